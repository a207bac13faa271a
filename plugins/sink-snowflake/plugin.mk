# sink-snowflake links libcurl (SQL API), libcrypto (key-pair JWT) and jansson.
PKGS_sink-snowflake := libcurl libcrypto jansson
# tests/test_snowflake.c compiles sf_core.c in (see the test's header).
TEST_PKGS_test_snowflake := libcrypto
TEST_SRCS_test_snowflake := plugins/sink-snowflake/sf_core.c plugins/sink-snowflake/sf_core.h
