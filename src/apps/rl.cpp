// ./rl — one thin main(): the shared stage command line (train/stage.h) for the rl stage.
#include "dist/dist.h"    // guarded_main
#include "train/stage.h"  // stage_main, Stage

int main(int argc, char** argv) {
  return kiln::dist::guarded_main(
      [](int c, char** v) { return kiln::train::stage_main(kiln::train::Stage::Rl, c, v); }, argc, argv);
}
