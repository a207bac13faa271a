# transform-window needs no package beyond avro-c. tests/test_window.c
# #includes window_core.c: rebuild it when the core changes.
TEST_SRCS_test_window := plugins/transform-window/window_core.c plugins/transform-window/window_core.h
