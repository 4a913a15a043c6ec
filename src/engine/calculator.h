// The calculator of the tool-use state machine (nanochat's use_calculator, without an
// interpreter): arithmetic on numbers with + - * / // and parentheses (commas in numbers are
// stripped), and 'text'.count('x'). Results print as Python prints them (5, 2.5, 24.0).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace kiln::engine {

// The result text, or nothing for anything else: syntax it does not know, ** (power), division by
// zero, integers beyond 64 bits, non-finite floats, nesting deeper than 64, input over 2000 bytes.
// Never throws, never loops: every input costs time linear in its length.
std::optional<std::string> calculate(std::string_view expr);

}  // namespace kiln::engine
