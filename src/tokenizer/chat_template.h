// kiln's chat format (chat.h, nanochat §4) as a Jinja chat template for transformers'
// apply_chat_template: the same ids as render_conversation for a conversation, and with
// add_generation_prompt the same as render_for_completion (the trailing <|assistant_start|>).
#pragma once
#include <string>

namespace kiln::tok {

// The template text (tokenizer_config.json "chat_template"); it needs bos_token = "<|bos|>".
const std::string& hf_chat_template();

}  // namespace kiln::tok
