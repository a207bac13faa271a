/* test_loader.c - plugin loading and ABI refusal: every broken fixture in
 * tests/fixtures/plugins is refused with one line naming the reason, good
 * plugins load, and a directory mixing both loads the good ones. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "task.h"

static const char *build_dir(void) {
    const char *b = getenv("SLUICE_BUILD");
    return b && *b ? b : "build";
}

static void path_of(char *out, size_t len, const char *sub, const char *file) {
    snprintf(out, len, "%s/%s/%s", build_dir(), sub, file);
}

/* Loads a fixture, expects refusal with a reason containing want. */
static void expect_refused(const char *fixture, const char *want) {
    char path[1024], err[512] = "";
    path_of(path, sizeof(path), "tests/fixtures", fixture);
    sl_plugin_t p;
    int rc = sl_plugin_load(path, sl_host_api(), &p, err, sizeof(err));
    if (rc == 0) fail_msg("%s was loaded, expected refusal containing '%s'", fixture, want);
    if (!strstr(err, want)) fail_msg("%s: reason '%s' lacks '%s'", fixture, err, want);
    assert_null(strchr(err, '\n')); /* one line */
}

/* Version strings are built from the header, so a minor bump needs no edit. */
static void test_refuse_next_major(void **st) {
    (void)st;
    char want[128];
    snprintf(want, sizeof(want), "incompatible ABI %d.%d (this worker implements ABI %d.%d)",
             SLUICE_ABI_MAJOR + 1, SLUICE_ABI_MINOR, SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
    expect_refused("bad_abi.so", want);
}
static void test_refuse_newer_minor(void **st) {
    (void)st;
    char want[128];
    snprintf(want, sizeof(want), "built for ABI %d.%d, newer than this worker's %d.%d",
             SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR + 1, SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
    expect_refused("newer_minor.so", want);
}
static void test_refuse_missing_entry(void **st) {
    (void)st;
    expect_refused("no_entry.so", "missing entry symbol sluice_plugin_entry_v1");
}
static void test_refuse_other_major_entry(void **st) {
    (void)st;
    expect_refused("entry_v2.so", "exports sluice_plugin_entry_v2");
}
static void test_refuse_bad_magic(void **st) {
    (void)st;
    expect_refused("bad_magic.so", "bad descriptor magic");
}
static void test_refuse_short_struct(void **st) {
    (void)st;
    expect_refused("short_struct.so", "descriptor struct_size");
}
static void test_refuse_null_entry(void **st) {
    (void)st;
    expect_refused("null_entry.so", "returned NULL");
}
static void test_refuse_kind_without_ops(void **st) {
    (void)st;
    expect_refused("bad_kind.so", "kind is source but its source ops are NULL");
}

static void test_refuse_not_a_library(void **st) {
    (void)st;
    char path[] = "/tmp/sluice-notlib-XXXXXX.so";
    int fd = mkstemps(path, 3);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not an ELF file", 15), 15);
    close(fd);
    char err[512];
    sl_plugin_t p;
    assert_int_equal(sl_plugin_load(path, sl_host_api(), &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot load"));
    unlink(path);
}

static void test_load_good_plugins(void **st) {
    (void)st;
    char path[1024], err[512];
    sl_plugin_t p;
    path_of(path, sizeof(path), "plugins", "source-counter.so");
    assert_int_equal(sl_plugin_load(path, sl_host_api(), &p, err, sizeof(err)), 0);
    assert_string_equal(p.desc->name, "source-counter");
    assert_int_equal(p.desc->kind, SLUICE_PLUGIN_SOURCE);
    assert_int_equal(p.desc->abi_major, SLUICE_ABI_MAJOR);
    assert_non_null(p.desc->config);
    sl_plugin_unload(&p);
    path_of(path, sizeof(path), "plugins", "sink-file.so");
    assert_int_equal(sl_plugin_load(path, sl_host_api(), &p, err, sizeof(err)), 0);
    assert_int_equal(p.desc->kind, SLUICE_PLUGIN_SINK);
    sl_plugin_unload(&p);
}

typedef struct refusals {
    int count;
    char last[1024];
} refusals_t;

static void on_refuse(void *arg, const char *path, const char *reason) {
    refusals_t *r = arg;
    r->count++;
    snprintf(r->last, sizeof(r->last), "%s: %s", path, reason);
}

static void test_scan_mixed_path(void **st) {
    (void)st;
    char path[2048];
    /* plugins dir twice: the second copy of each name is a duplicate. */
    snprintf(path, sizeof(path), "%s/plugins,%s/tests/fixtures,/nonexistent-sluice-dir,%s/plugins",
             build_dir(), build_dir(), build_dir());
    refusals_t r = {0, ""};
    sl_registry_t *reg = sl_registry_scan(path, sl_host_api(), on_refuse, &r);
    assert_non_null(reg);
    assert_non_null(sl_registry_find(reg, "source-counter"));
    assert_non_null(sl_registry_find(reg, "sink-file"));
    assert_null(sl_registry_find(reg, "fixture-bad-abi"));
    size_t good = sl_registry_count(reg);
    char fixtures[1024];
    snprintf(fixtures, sizeof(fixtures), "%s/tests/fixtures", build_dir());
    /* every fixture refused + one missing dir + one duplicate per good plugin */
    int nfixtures = 0;
    FILE *ls = NULL;
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "ls %s/*.so | wc -l", fixtures);
    if ((ls = popen(cmd, "r")) != NULL) {
        if (fscanf(ls, "%d", &nfixtures) != 1) nfixtures = -1;
        pclose(ls);
    }
    assert_true(nfixtures >= 8);
    assert_int_equal(r.count, nfixtures + 1 + (int)good);
    assert_non_null(strstr(r.last, "duplicate plugin name"));
    sl_registry_free(reg);
}

int main(void) {
    setenv("SLUICE_NO_DLCLOSE", "1", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refuse_next_major),
        cmocka_unit_test(test_refuse_newer_minor),
        cmocka_unit_test(test_refuse_missing_entry),
        cmocka_unit_test(test_refuse_other_major_entry),
        cmocka_unit_test(test_refuse_bad_magic),
        cmocka_unit_test(test_refuse_short_struct),
        cmocka_unit_test(test_refuse_null_entry),
        cmocka_unit_test(test_refuse_kind_without_ops),
        cmocka_unit_test(test_refuse_not_a_library),
        cmocka_unit_test(test_load_good_plugins),
        cmocka_unit_test(test_scan_mixed_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
