// The Jinja template of chat_template.h, rule for rule render_conversation (chat.cpp): <|bos|>; a
// leading system message joined to the first user message with "\n\n"; roles alternating user,
// assistant; user text between <|user_start|> and <|user_end|>; assistant content (a string, or
// parts: text, python -> <|python_start|>..<|python_end|>, python_output ->
// <|output_start|>..<|output_end|>) between <|assistant_start|> and <|assistant_end|>. Text between
// special tokens is encoded on its own, as kiln encodes each piece. Keep the two in step: the
// chat-template test (tests/e2e/nanochat_hf.sh) compares them id for id.
#include "tokenizer/chat_template.h"

namespace kiln::tok {

const std::string& hf_chat_template() {
  static const std::string t =
      "{%- set ns = namespace(system='', turn=0) -%}"
      "{{- bos_token -}}"
      "{%- for message in messages -%}"
      "{%- if loop.first and message['role'] == 'system' -%}"
      "{%- set ns.system = message['content'] + '\\n\\n' -%}"
      "{%- else -%}"
      "{%- if message['role'] != ['user', 'assistant'][ns.turn % 2] -%}"
      "{{- raise_exception('roles must alternate user, assistant, user, ... (an optional system message first)') -}}"
      "{%- endif -%}"
      "{%- set ns.turn = ns.turn + 1 -%}"
      "{%- if message['role'] == 'user' -%}"
      "{{- '<|user_start|>' + ns.system + message['content'] + '<|user_end|>' -}}"
      "{%- set ns.system = '' -%}"
      "{%- else -%}"
      "{{- '<|assistant_start|>' -}}"
      "{%- if message['content'] is string -%}"
      "{{- message['content'] -}}"
      "{%- else -%}"
      "{%- for part in message['content'] -%}"
      "{%- if part['type'] == 'python' -%}"
      "{{- '<|python_start|>' + part['text'] + '<|python_end|>' -}}"
      "{%- elif part['type'] == 'python_output' -%}"
      "{{- '<|output_start|>' + part['text'] + '<|output_end|>' -}}"
      "{%- else -%}"
      "{{- part['text'] -}}"
      "{%- endif -%}"
      "{%- endfor -%}"
      "{%- endif -%}"
      "{{- '<|assistant_end|>' -}}"
      "{%- endif -%}"
      "{%- endif -%}"
      "{%- endfor -%}"
      "{%- if add_generation_prompt -%}"
      "{{- '<|assistant_start|>' -}}"
      "{%- endif -%}";
  return t;
}

}  // namespace kiln::tok
