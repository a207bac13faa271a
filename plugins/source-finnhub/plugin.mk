PKGS_source-finnhub := libwebsockets jansson
# tests/test_finnhub.c #includes parse.c: rebuild it when the parser changes.
TEST_SRCS_test_finnhub := plugins/source-finnhub/parse.c plugins/source-finnhub/parse.h
