# Strict warnings for project code. Imported targets are included as system
# headers, so third-party code does not trip these.
add_compile_options(
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Woverloaded-virtual -Wimplicit-fallthrough)
if(RKV_WERROR)
  add_compile_options(-Werror)
endif()
