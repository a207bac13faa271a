TOOL_PKGS_snowflake-emulator := libmicrohttpd sqlite3 libcrypto
