# cmake -DIN=... -DOUT=... -P rewrite_import.cmake
# three.js's add-ons import the bare name 'three', which a browser resolves
# only through an import map (an inline script our Content-Security-Policy
# forbids). Point them at the file beside them instead.
file(READ "${IN}" text)
string(REPLACE "from 'three';" "from './three.module.js';" text "${text}")
string(FIND "${text}" "from './three.module.js';" found)
if(found EQUAL -1)
  message(FATAL_ERROR "rewrite_import: no import of 'three' in ${IN}")
endif()
file(WRITE "${OUT}" "${text}")
