# Per-tool pkg-config packages (see the Makefile): TOOL_PKGS_<tool> := ...
TOOL_PKGS_finnhub-replay := libwebsockets jansson
TOOL_PKGS_ws-probe := libwebsockets jansson
TOOL_PKGS_snowflake-emulator := libmicrohttpd sqlite3 libcrypto
