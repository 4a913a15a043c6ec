# Build step: writes ${OUT}, a C++ header holding ${IN} (the chat page) as the byte array
# kiln::serve::kPageHtml, so ./serve carries its page and needs no files at run time.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "// Generated from src/serve/page.html by src/serve/embed_page.cmake; do not edit.\n#pragma once\n"
     "namespace kiln::serve {\ninline constexpr unsigned char kPageHtml[] = {${bytes}};\n}  // namespace kiln::serve\n")
