/* The comparison engine: JSON equality rules (key order, numbers by value, arrays by position),
 * ignore patterns, the exact path and values of each difference, status and headers, bytes and
 * auto modes, truncated and invalid bodies, deep nesting, noise learning with decay, the bounds,
 * properties over random documents, and the cost of a comparison. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compare.h"
#include "tap.h"

/* a writable string, for the conf's char * lists (-Wwrite-strings) */
#define S(x) ((char[]){x})

#define QK_MANY 9 /* more ignore patterns than the quick check takes */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A side with up to 8 headers ("Name: value" strings) and a body; sha256 computed over body
 * when digest is set. */
typedef struct {
    sf_http_header h[8];
    sf_cmp_side s;
    unsigned char sha[32];
} side_buf;

static sf_cmp_side *mkside(side_buf *b, int status, const char *const *headers, const char *body,
                           size_t len, int digest)
{
    memset(b, 0, sizeof(*b));
    size_t n = 0;
    for (; headers != NULL && headers[n] != NULL && n < 8; n++) {
        const char *colon = strchr(headers[n], ':');
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        b->h[n].name = (sf_slice){headers[n], (size_t)(colon - headers[n])};
        b->h[n].value = (sf_slice){v, strlen(v)};
    }
    b->s.status = status;
    b->s.headers = b->h;
    b->s.nheaders = n;
    b->s.body = body;
    b->s.body_len = len;
    b->s.body_total = len;
    if (digest) {
        EVP_Digest(body, len, b->sha, NULL, EVP_sha256(), NULL);
        b->s.sha256 = b->sha;
    }
    return &b->s;
}

static sf_shadow_conf conf_mode(int mode)
{
    sf_shadow_conf c;
    memset(&c, 0, sizeof(c));
    c.enabled = 1;
    c.compare_status = 1;
    c.body_mode = mode;
    return c;
}

static int cmp(const sf_shadow_conf *c, const sf_noise *nz, const char *a, const char *b,
               sf_cmp_outcome *o)
{
    return sf_compare_bodies(c, nz, a, strlen(a), b, strlen(b), 0, o);
}

static const sf_cmp_diff *find(const sf_cmp_outcome *o, const char *path)
{
    for (size_t i = 0; i < o->ndiffs; i++)
        if (strcmp(o->diffs[i].path, path) == 0)
            return &o->diffs[i];
    return NULL;
}

static void show(const sf_cmp_outcome *o)
{
    diag("result %d, %zu listed, %zu more, notes %#x", (int)o->result, o->ndiffs, o->more,
         o->notes);
    for (size_t i = 0; i < o->ndiffs && i < 8; i++)
        diag("  %s: %s | %s", o->diffs[i].path, o->diffs[i].legacy ? o->diffs[i].legacy : "NULL",
             o->diffs[i].function ? o->diffs[i].function : "NULL");
}

/* The outcome is result with exactly one listed difference at path with these values (NULL:
 * absent). */
static void one_diff(const sf_cmp_outcome *o, sf_cmp_result result, const char *path,
                     const char *legacy, const char *function, const char *what)
{
    int good = o->result == result && o->ndiffs == 1 && o->more == 0;
    if (!ok(good, "%s: one difference", what))
        show(o);
    if (o->ndiffs < 1)
        return;
    is_str(o->diffs[0].path, path, "%s: path", what);
    is_str(o->diffs[0].legacy, legacy, "%s: legacy's value", what);
    is_str(o->diffs[0].function, function, "%s: function's value", what);
}

static void expect(const sf_shadow_conf *c, const sf_noise *nz, const char *a, const char *b,
                   sf_cmp_result want, const char *what)
{
    sf_cmp_outcome o;
    int rc = cmp(c, nz, a, b, &o);
    if (!ok(rc == 0 && o.result == want, "%s", what)) {
        diag("%s vs %s", a, b);
        show(&o);
    }
    sf_cmp_outcome_dispose(&o);
}

static void test_json_equality(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    sf_cmp_outcome o;
    is(cmp(&c, NULL, "{\"a\":1,\"b\":{\"x\":[1,2],\"y\":\"s\"}}",
           " { \"b\" : {\"y\":\"s\", \"x\":[1, 2]},\n \"a\" : 1 } ", &o),
       0, "comparison succeeds");
    is(o.result, SF_CMP_MATCH, "equal JSON in another key order and spacing matches");
    is(o.body_as, SF_BODY_JSON, "compared as JSON");
    is((long long)o.ndiffs, 0, "no differences listed for a match");
    ok(o.diffs == NULL, "a match allocates no list");
    sf_cmp_outcome_dispose(&o);

    expect(&c, NULL, "{\"n\":1}", "{\"n\":1.0}", SF_CMP_MATCH, "1 equals 1.0");
    expect(&c, NULL, "{\"n\":100}", "{\"n\":1e2}", SF_CMP_MATCH, "100 equals 1e2");
    expect(&c, NULL, "[0.5]", "[5e-1]", SF_CMP_MATCH, "0.5 equals 5e-1");
    expect(&c, NULL, "[0]", "[-0.0]", SF_CMP_MATCH, "0 equals -0.0");
    expect(&c, NULL, "[-3]", "[-3.000]", SF_CMP_MATCH, "negative integer equals its real");
    expect(&c, NULL, "{\"n\":1}", "{\"n\":1.5}", SF_CMP_MISMATCH, "1 differs from 1.5");
    expect(&c, NULL, "[9007199254740993]", "[9007199254740992]", SF_CMP_MISMATCH,
           "integers are compared exactly past 2^53");
    expect(&c, NULL, "[9223372036854775807]", "[9223372036854775807.0]", SF_CMP_MISMATCH,
           "a real out of the integer range is not equal to INT64_MAX");
    expect(&c, NULL, "[123456789012345678901234567890]", "[123456789012345678901234567890.0]",
           SF_CMP_MATCH, "an integer past 64 bits is compared as a real");
    expect(&c, NULL, "\"a\"", "\"b\"", SF_CMP_MISMATCH, "a top-level string");
    expect(&c, NULL, "\"a\\u0000b\"", "\"a\\u0000c\"", SF_CMP_MISMATCH,
           "strings with NUL compared whole");
    expect(&c, NULL, "\"a\\u0000b\"", " \"a\\u0000b\"", SF_CMP_MATCH,
           "strings with NUL equal when equal");
    expect(&c, NULL, "[true,false,null]", "[true, false, null]", SF_CMP_MATCH, "literals");
    expect(&c, NULL, "[\"A\\u00e9\\/\"]", "[\"\\u0041\xc3\xa9/\"]", SF_CMP_MATCH,
           "strings compare by value, escapes decoded");
    expect(&c, NULL, "{\"a\":1,\"a\":2}", "{\"a\":2}", SF_CMP_MATCH,
           "duplicate keys: the last one counts");
    expect(&c, NULL, "{}", " {}", SF_CMP_MATCH, "empty objects");
    expect(&c, NULL, "[]", "{}", SF_CMP_MISMATCH, "an empty array is not an empty object");
}

static void test_differences(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    sf_cmp_outcome o;
    const char *legacy = "{\"products\":[{\"id\":1,\"price\":5},{\"id\":2,\"price\":6},"
                         "{\"id\":3,\"price\":7},{\"id\":4,\"price\":9.99,\"name\":\"four\"}]}";
    const char *fn = "{\"products\":[{\"id\":1,\"price\":5},{\"id\":2,\"price\":6},"
                     "{\"id\":3,\"price\":7},{\"name\":\"four\",\"id\":4,\"price\":10.5}]}";
    cmp(&c, NULL, legacy, fn, &o);
    one_diff(&o, SF_CMP_MISMATCH, "/products/3/price", "9.99", "10.5", "a changed price");
    is((long long)o.nmismatch, 1, "one mismatch counted");
    sf_cmp_outcome_dispose(&o);

    cmp(&c, NULL, "{\"a\":\"x\",\"b\":1}", "{\"b\":1}", &o);
    one_diff(&o, SF_CMP_MISMATCH, "/a", "\"x\"", NULL, "a member only legacy has");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, "{\"b\":1}", "{\"b\":1,\"c\":{\"d\":[1]}}", &o);
    one_diff(&o, SF_CMP_MISMATCH, "/c", NULL, "{\"d\":[1]}", "a member only the function has");
    sf_cmp_outcome_dispose(&o);

    cmp(&c, NULL, "{\"a\":\"1\"}", "{\"a\":1}", &o);
    one_diff(&o, SF_CMP_MISMATCH, "/a", "\"1\"", "1", "a string is not a number");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, "{\"a\":true}", "{\"a\":false}", &o);
    one_diff(&o, SF_CMP_MISMATCH, "/a", "true", "false", "true is not false");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, "{\"a\":null}", "{\"a\":{}}", &o);
    one_diff(&o, SF_CMP_MISMATCH, "/a", "null", "{}", "null is not an object");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, "{\"a\":1.0}", "{\"a\":\"1\"}", &o);
    one_diff(&o, SF_CMP_MISMATCH, "/a", "1.0", "\"1\"", "a real renders as a real");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, "[0.1]", "[0.2]", &o);
    one_diff(&o, SF_CMP_MISMATCH, "/0", "0.1", "0.2", "reals render in their shortest form");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, "[1]", "{\"a\":1}", &o);
    one_diff(&o, SF_CMP_MISMATCH, "", "[1]", "{\"a\":1}", "a difference at the root is at \"\"");
    sf_cmp_outcome_dispose(&o);

    cmp(&c, NULL, "{\"a/b\":1,\"m~n\":2}", "{\"a/b\":3,\"m~n\":4}", &o);
    is((long long)o.ndiffs, 2, "two differences");
    ok(find(&o, "/a~1b") != NULL, "'/' in a key is escaped as ~1 in the path");
    ok(find(&o, "/m~0n") != NULL, "'~' in a key is escaped as ~0 in the path");
    sf_cmp_outcome_dispose(&o);

    cmp(&c, NULL, "{\"s\":\"a\\n\\u0001\\\"\\\\\\u00e9\\u0085\"}", "{\"s\":\"b\"}", &o);
    const sf_cmp_diff *d = find(&o, "/s");
    is_str(d ? d->legacy : NULL, "\"a\\n\\u0001\\\"\\\\\xc3\xa9\\u0085\"",
           "control characters escaped, other characters kept as UTF-8");
    sf_cmp_outcome_dispose(&o);

    cmp(&c, NULL, "{\"a\":{\"b\":{\"c\":1,\"d\":2}},\"e\":3}",
        "{\"e\":4,\"a\":{\"b\":{\"d\":2,\"c\":0}}}", &o);
    ok(o.ndiffs == 2 && strcmp(o.diffs[0].path, "/a/b/c") == 0 &&
           strcmp(o.diffs[1].path, "/e") == 0,
       "differences listed in legacy's document order, at the deepest differing node");
    sf_cmp_outcome_dispose(&o);

    /* many differences: 32 listed, the rest counted */
    char a[4096], b[4096];
    size_t la = 0, lb = 0;
    la += (size_t)snprintf(a + la, sizeof(a) - la, "[");
    lb += (size_t)snprintf(b + lb, sizeof(b) - lb, "[");
    for (int i = 0; i < 50; i++) {
        la += (size_t)snprintf(a + la, sizeof(a) - la, "%s%d", i ? "," : "", i);
        lb += (size_t)snprintf(b + lb, sizeof(b) - lb, "%s%d", i ? "," : "", i + 1000);
    }
    snprintf(a + la, sizeof(a) - la, "]");
    snprintf(b + lb, sizeof(b) - lb, "]");
    cmp(&c, NULL, a, b, &o);
    is((long long)o.ndiffs, SF_CMP_MAX_DIFFS, "at most SF_CMP_MAX_DIFFS differences listed");
    is((long long)o.more, 50 - SF_CMP_MAX_DIFFS, "the rest counted in more");
    is((long long)o.nmismatch, 50, "every difference counted");
    is_str(o.ndiffs ? o.diffs[31].path : NULL, "/31", "the first ones are listed");
    sf_cmp_outcome_dispose(&o);
}

static void test_arrays(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    sf_cmp_outcome o;
    expect(&c, NULL, "[1,2,3]", "[1,3,2]", SF_CMP_MISMATCH, "arrays compare by position");
    cmp(&c, NULL, "{\"a\":[1,2,3]}", "{\"a\":[1,2,3,4,5]}", &o);
    ok(o.result == SF_CMP_MISMATCH && o.ndiffs == 3, "longer array: the length and two extras");
    const sf_cmp_diff *d = find(&o, "/a");
    is_str(d ? d->legacy : NULL, "(length 3)", "legacy's length at the array's path");
    is_str(d ? d->function : NULL, "(length 5)", "the function's length at the array's path");
    d = find(&o, "/a/3");
    ok(d != NULL && d->legacy == NULL && d->function && strcmp(d->function, "4") == 0,
       "an element only the function has is absent on legacy's side");
    ok(find(&o, "/a/4") != NULL, "the second extra element");
    sf_cmp_outcome_dispose(&o);

    cmp(&c, NULL, "[[1,2],[3,4]]", "[[1,2],[3,5]]", &o);
    one_diff(&o, SF_CMP_MISMATCH, "/1/1", "4", "5", "nested arrays");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, "[[1,2],[3,4]]", "[[1,2],[3]]", &o);
    ok(find(&o, "/1") && find(&o, "/1/1") && o.ndiffs == 2, "a nested array shorter by one");
    sf_cmp_outcome_dispose(&o);

    /* an element inserted at the front of a long array shifts everything: bounded */
    char a[8192], b[8192];
    size_t la = 0, lb = 0;
    la += (size_t)snprintf(a + la, sizeof(a) - la, "{\"items\":[");
    lb += (size_t)snprintf(b + lb, sizeof(b) - lb, "{\"items\":[{\"id\":-1}");
    for (int i = 0; i < 300; i++) {
        la += (size_t)snprintf(a + la, sizeof(a) - la, "%s{\"id\":%d}", i ? "," : "", i);
        lb += (size_t)snprintf(b + lb, sizeof(b) - lb, ",{\"id\":%d}", i);
    }
    snprintf(a + la, sizeof(a) - la, "]}");
    snprintf(b + lb, sizeof(b) - lb, "]}");
    cmp(&c, NULL, a, b, &o);
    is((long long)o.nmismatch, 1 + SF_CMP_ARRAY_SHIFT,
       "an insertion: the length plus a few shifted elements, not 300");
    d = find(&o, "/items");
    is_str(d ? d->function : NULL, "(length 301)", "the new length");
    ok(find(&o, "/items/0/id") != NULL, "the first shifted element named at its leaf");
    sf_cmp_outcome_dispose(&o);
}

static void test_ignore(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    char *ignore[] = {S("/generated_at"), S("/items/*/etag"), S("/meta/*/ts"),
                      S("/a~1b"),         S("/m~0n/x"),       S("/blob")};
    c.ignore = ignore;
    c.nignore = 6;
    expect(&c, NULL, "{\"id\":1,\"generated_at\":\"t1\"}", "{\"generated_at\":\"t2\",\"id\":1}",
           SF_CMP_MATCH, "an ignored field matches");
    expect(&c, NULL, "{\"id\":1,\"generated_at\":\"t1\"}", "{\"id\":1}", SF_CMP_MATCH,
           "an ignored field missing on one side matches");
    expect(&c, NULL, "{\"id\":1,\"generated_at\":\"t1\"}", "{\"id\":2,\"generated_at\":\"t2\"}",
           SF_CMP_MISMATCH, "a difference beside an ignored field still counts");
    expect(&c, NULL, "{\"generated_atx\":1}", "{\"generated_atx\":2}", SF_CMP_MISMATCH,
           "a pattern names one key, not a prefix of keys");
    expect(&c, NULL, "{\"items\":[{\"id\":1,\"etag\":\"a\"},{\"id\":2,\"etag\":\"b\"}]}",
           "{\"items\":[{\"id\":1,\"etag\":\"x\"},{\"id\":2,\"etag\":\"y\"}]}", SF_CMP_MATCH,
           "* matches every array element");
    expect(&c, NULL, "{\"items\":[{\"id\":1,\"etag\":\"a\"}]}",
           "{\"items\":[{\"id\":9,\"etag\":\"x\"}]}", SF_CMP_MISMATCH,
           "* ignores only the named member of each element");
    expect(&c, NULL, "{\"meta\":{\"db\":{\"ts\":1},\"cache\":{\"ts\":2}}}",
           "{\"meta\":{\"db\":{\"ts\":3},\"cache\":{\"ts\":4}}}", SF_CMP_MATCH,
           "* matches every object key");
    expect(&c, NULL, "{\"meta\":{\"db\":{\"ts\":1,\"n\":1}}}",
           "{\"meta\":{\"db\":{\"ts\":3,\"n\":2}}}", SF_CMP_MISMATCH, "* matches one level only");
    expect(&c, NULL, "{\"a/b\":1}", "{\"a/b\":2}", SF_CMP_MATCH, "~1 in a pattern is '/'");
    expect(&c, NULL, "{\"a\":{\"b\":1}}", "{\"a\":{\"b\":2}}", SF_CMP_MISMATCH,
           "~1 is not a path separator");
    expect(&c, NULL, "{\"m~n\":{\"x\":1}}", "{\"m~n\":{\"x\":2}}", SF_CMP_MATCH,
           "~0 in a pattern is '~'");
    expect(&c, NULL, "{\"blob\":{\"deep\":[1,{\"x\":[2,3]}]}}", "{\"blob\":[\"other\"]}",
           SF_CMP_MATCH, "everything under an ignored path is ignored");
    expect(&c, NULL, "{\"items\":[{\"etag\":1}]}", "{\"items\":[{\"etag\":1},{\"etag\":2}]}",
           SF_CMP_MISMATCH, "a length difference is not under an ignored element pattern");

    char *star[] = {S("/items/*")};
    c.ignore = star;
    c.nignore = 1;
    expect(&c, NULL, "{\"items\":[1,2]}", "{\"items\":[3,4]}", SF_CMP_MATCH,
           "/items/* ignores "
           "elements");
    char *idx[] = {S("/items/1")};
    c.ignore = idx;
    expect(&c, NULL, "[0]", "[1]", SF_CMP_MISMATCH, "a pattern deeper than the document");
    expect(&c, NULL, "{\"items\":[1,2]}", "{\"items\":[1,3]}", SF_CMP_MATCH,
           "an index in a pattern names one element");
    expect(&c, NULL, "{\"items\":[1,2]}", "{\"items\":[3,2]}", SF_CMP_MISMATCH,
           "and only that one");
    char *root[] = {S("")};
    c.ignore = root;
    expect(&c, NULL, "{\"a\":1}", "{\"a\":2}", SF_CMP_MATCH, "\"\" ignores the whole body");
    expect(&c, NULL, "{\"a\":1}", "<html>", SF_CMP_MATCH, "even when it is not JSON");
    c.body_mode = SF_BODY_BYTES;
    expect(&c, NULL, "abc", "abd", SF_CMP_MATCH, "and in bytes mode");
}

static void test_status_and_headers(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_NONE);
    char *names[] = {S("content-type"), S("etag"), S("x-long")};
    c.compare_headers = names;
    c.ncompare_headers = 3;
    side_buf a, b;
    sf_cmp_outcome o;

    const char *h1[] = {"Content-Type: application/json", "ETag: \"v1\"", NULL};
    const char *h2[] = {"content-type: application/json", "etag: \"v1\"", NULL};
    sf_compare(&c, NULL, mkside(&a, 200, h1, "x", 1, 0), mkside(&b, 200, h2, "y", 1, 0), &o);
    is(o.result, SF_CMP_MATCH, "header names compare case-insensitively; body none ignores bodies");
    is(o.body_as, SF_BODY_NONE, "body not compared");
    sf_cmp_outcome_dispose(&o);

    sf_compare(&c, NULL, mkside(&a, 200, h1, "", 0, 0), mkside(&b, 404, h2, "", 0, 0), &o);
    one_diff(&o, SF_CMP_MISMATCH, "status", "200", "404", "a status difference");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, h1, "", 0, 0), mkside(&b, 0, h2, "", 0, 0), &o);
    one_diff(&o, SF_CMP_MISMATCH, "status", "200", "(none)", "no response has status (none)");
    sf_cmp_outcome_dispose(&o);
    c.compare_status = 0;
    sf_compare(&c, NULL, mkside(&a, 200, h1, "", 0, 0), mkside(&b, 404, h2, "", 0, 0), &o);
    is(o.result, SF_CMP_MATCH, "status: false leaves the status alone");
    sf_cmp_outcome_dispose(&o);
    c.compare_status = 1;

    const char *h3[] = {"Content-Type: text/html", "ETag: \"v1\"", NULL};
    sf_compare(&c, NULL, mkside(&a, 200, h1, "", 0, 0), mkside(&b, 200, h3, "", 0, 0), &o);
    one_diff(&o, SF_CMP_MISMATCH, "header:content-type", "\"application/json\"", "\"text/html\"",
             "a header's value differs");
    sf_cmp_outcome_dispose(&o);

    const char *h4[] = {"Content-Type: application/json", NULL};
    sf_compare(&c, NULL, mkside(&a, 200, h1, "", 0, 0), mkside(&b, 200, h4, "", 0, 0), &o);
    one_diff(&o, SF_CMP_MISMATCH, "header:etag", "\"\\\"v1\\\"\"", NULL,
             "a header only legacy sends is absent on the function's side");
    sf_cmp_outcome_dispose(&o);

    const char *h5[] = {"ETag: a", "X-Other: 1", "etag: b", NULL};
    const char *h6[] = {"etag: a, b", NULL};
    const char *h7[] = {"etag: b", "etag: a", NULL};
    c.ncompare_headers = 2;
    names[0] = S("x-none");
    sf_compare(&c, NULL, mkside(&a, 200, h5, "", 0, 0), mkside(&b, 200, h6, "", 0, 0), &o);
    is(o.result, SF_CMP_MATCH, "occurrences are joined with \", \"");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, h5, "", 0, 0), mkside(&b, 200, h7, "", 0, 0), &o);
    one_diff(&o, SF_CMP_MISMATCH, "header:etag", "\"a, b\"", "\"b, a\"",
             "the order of occurrences matters");
    sf_cmp_outcome_dispose(&o);
    const char *h8[] = {"etag:", NULL};
    sf_compare(&c, NULL, mkside(&a, 200, h8, "", 0, 0), mkside(&b, 200, NULL, "", 0, 0), &o);
    one_diff(&o, SF_CMP_MISMATCH, "header:etag", "\"\"", NULL, "empty is not absent");
    sf_cmp_outcome_dispose(&o);

    /* long values take the heap path; both the same and different */
    static char v1[2100], v2[2100], v3[2100];
    memcpy(v1, "X-Long: ", 8);
    memset(v1 + 8, 'q', 2000);
    memcpy(v2, v1, sizeof(v1));
    memcpy(v3, v1, sizeof(v1));
    v3[1990] = 'r';
    names[0] = S("x-long");
    const char *l1[] = {v1, NULL}, *l2[] = {v2, NULL}, *l3[] = {v3, NULL};
    sf_compare(&c, NULL, mkside(&a, 200, l1, "", 0, 0), mkside(&b, 200, l2, "", 0, 0), &o);
    is(o.result, SF_CMP_MATCH, "a 2000-byte header value equal");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, l1, "", 0, 0), mkside(&b, 200, l3, "", 0, 0), &o);
    ok(o.result == SF_CMP_MISMATCH && o.ndiffs == 1 &&
           strlen(o.diffs[0].legacy) <= SF_CMP_VALUE_MAX + 3,
       "a 2000-byte header value differing near its end, rendered cut");
    sf_cmp_outcome_dispose(&o);

    /* order: status, headers, body */
    c.body_mode = SF_BODY_BYTES;
    names[0] = S("content-type");
    sf_compare(&c, NULL, mkside(&a, 200, h1, "a", 1, 0), mkside(&b, 500, h3, "b", 1, 0), &o);
    ok(o.ndiffs == 3 && strcmp(o.diffs[0].path, "status") == 0 &&
           strcmp(o.diffs[1].path, "header:content-type") == 0 &&
           strcmp(o.diffs[2].path, "body") == 0,
       "status, then headers, then the body");
    sf_cmp_outcome_dispose(&o);
}

static void test_bytes_mode(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_BYTES);
    side_buf a, b;
    sf_cmp_outcome o;

    sf_compare(&c, NULL, mkside(&a, 200, NULL, "hello", 5, 1), mkside(&b, 200, NULL, "hello", 5, 1),
               &o);
    ok(o.result == SF_CMP_MATCH && o.body_as == SF_BODY_BYTES, "equal bytes match");
    sf_cmp_outcome_dispose(&o);
    expect(&c, NULL, "{\"a\":1}", "{\"a\":1.0}", SF_CMP_MISMATCH,
           "bytes mode does not read JSON even when typed so");

    sf_compare(&c, NULL, mkside(&a, 200, NULL, "hello", 5, 1), mkside(&b, 200, NULL, "hellp", 5, 1),
               &o);
    one_diff(&o, SF_CMP_MISMATCH, "body", "\"hello\" (5 bytes)", "\"hellp\" (5 bytes)",
             "same length, other bytes");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, NULL, "hello", 5, 1), mkside(&b, 200, NULL, "hell", 4, 1),
               &o);
    one_diff(&o, SF_CMP_MISMATCH, "body", "\"hello\" (5 bytes)", "\"hell\" (4 bytes)",
             "other lengths");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, NULL, "", 0, 1), mkside(&b, 200, NULL, NULL, 0, 0), &o);
    is(o.result, SF_CMP_MATCH, "two empty bodies, one without a pointer");
    sf_cmp_outcome_dispose(&o);

    /* a long body differing late: the rendering starts near the difference */
    static char big1[5000], big2[5000];
    memset(big1, 'a', sizeof(big1));
    memcpy(big2, big1, sizeof(big2));
    big2[3000] = 'b';
    sf_compare(&c, NULL, mkside(&a, 200, NULL, big1, sizeof(big1), 1),
               mkside(&b, 200, NULL, big2, sizeof(big2), 1), &o);
    const sf_cmp_diff *d = find(&o, "body");
    ok(d && strncmp(d->function, "\xe2\x80\xa6\"aaaaaaaaaaaaaaaab", 21) == 0,
       "rendered from shortly before the first differing byte");
    ok(d && strstr(d->function, "\xe2\x80\xa6 (5000 bytes)") != NULL,
       "cut with an ellipsis, then the length");
    ok(d && strlen(d->legacy) <= SF_CMP_VALUE_MAX + 40, "bounded");
    sf_cmp_outcome_dispose(&o);

    /* truncated: only the digest covers it all */
    mkside(&a, 200, NULL, big1, sizeof(big1), 1);
    mkside(&b, 200, NULL, big1, sizeof(big1), 1);
    a.s.body_len = b.s.body_len = 100;
    a.s.body_truncated = b.s.body_truncated = 1;
    sf_compare(&c, NULL, &a.s, &b.s, &o);
    is(o.result, SF_CMP_MATCH, "truncated bodies with equal digests and lengths match");
    sf_cmp_outcome_dispose(&o);
    mkside(&b, 200, NULL, big2, sizeof(big2), 1);
    b.s.body_len = 100;
    b.s.body_truncated = 1;
    sf_compare(&c, NULL, &a.s, &b.s, &o);
    ok(o.result == SF_CMP_MISMATCH && find(&o, "body") != NULL,
       "truncated bodies whose kept bytes agree but digests differ: mismatch");
    d = find(&o, "body");
    ok(d && strstr(d->legacy, "\xe2\x80\xa6 (5000 bytes)") != NULL,
       "a truncated body renders as cut, with its whole length");
    sf_cmp_outcome_dispose(&o);
    mkside(&b, 200, NULL, big1, sizeof(big1) - 1, 1);
    b.s.body_len = 100;
    b.s.body_truncated = 1;
    sf_compare(&c, NULL, &a.s, &b.s, &o);
    is(o.result, SF_CMP_MISMATCH, "truncated bodies of other whole lengths differ");
    sf_cmp_outcome_dispose(&o);

    mkside(&a, 200, NULL, big1, sizeof(big1), 0);
    mkside(&b, 200, NULL, big2, sizeof(big2), 0);
    a.s.body_len = b.s.body_len = 100;
    a.s.body_total = b.s.body_total = sizeof(big1);
    sf_compare(&c, NULL, &a.s, &b.s, &o);
    ok(o.result == SF_CMP_MATCH && (o.notes & SF_CMP_NOTE_NO_DIGEST),
       "no digest: only the kept bytes compared, and noted (body_total alone marks truncation)");
    sf_cmp_outcome_dispose(&o);

    /* invalid UTF-8 and control bytes render as valid text */
    sf_compare(&c, NULL, mkside(&a, 200, NULL, "\xff\x01\xc3", 3, 0),
               mkside(&b, 200, NULL, "\xfe", 1, 0), &o);
    d = find(&o, "body");
    is_str(d ? d->legacy : NULL, "\"\xef\xbf\xbd\\u0001\xef\xbf\xbd\" (3 bytes)",
           "ill-formed UTF-8 as U+FFFD, control bytes escaped");
    sf_cmp_outcome_dispose(&o);
}

static void test_auto_mode(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_AUTO);
    side_buf a, b;
    sf_cmp_outcome o;
    const char *json1 = "{\"a\":1,\"b\":2}", *json2 = "{\"b\":2,\"a\":1.0}";
    const char *html[] = {"Content-Type: text/html", NULL};
    const char *js[] = {"Content-Type: application/json; charset=utf-8", NULL};
    const char *prob[] = {"content-type:  Application/Problem+JSON ; x=1", NULL};
    const char *jsish[] = {"Content-Type: application/jsonx", NULL};

    sf_compare(&c, NULL, mkside(&a, 200, js, json1, strlen(json1), 1),
               mkside(&b, 200, prob, json2, strlen(json2), 1), &o);
    ok(o.result == SF_CMP_MATCH && o.body_as == SF_BODY_JSON,
       "auto: JSON types with parameters (and +json) compare as JSON");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, html, json1, strlen(json1), 1),
               mkside(&b, 200, html, json2, strlen(json2), 1), &o);
    ok(o.result == SF_CMP_MISMATCH && o.body_as == SF_BODY_BYTES && find(&o, "body"),
       "auto: text/html compares as bytes");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, js, json1, strlen(json1), 1),
               mkside(&b, 200, html, json2, strlen(json2), 1), &o);
    ok(o.result == SF_CMP_MISMATCH && o.body_as == SF_BODY_BYTES,
       "auto: one JSON and one not compares as bytes");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, jsish, json1, strlen(json1), 1),
               mkside(&b, 200, jsish, json2, strlen(json2), 1), &o);
    is(o.body_as, SF_BODY_BYTES, "application/jsonx is not JSON");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, NULL, json1, strlen(json1), 1),
               mkside(&b, 200, NULL, json1, strlen(json1), 1), &o);
    ok(o.result == SF_CMP_MATCH && o.body_as == SF_BODY_BYTES, "auto: untyped equal bytes match");
    sf_cmp_outcome_dispose(&o);
    sf_compare(&c, NULL, mkside(&a, 200, js, json1, strlen(json1), 1),
               mkside(&b, 200, js, "{\"a\":", 5, 1), &o);
    ok(o.result == SF_CMP_MISMATCH && o.body_as == SF_BODY_BYTES &&
           (o.notes & SF_CMP_NOTE_FUNCTION_NOT_JSON) && !(o.notes & SF_CMP_NOTE_LEGACY_NOT_JSON) &&
           find(&o, "body") != NULL,
       "auto: JSON-typed but unparsable falls back to bytes, noted on the right side");
    sf_cmp_outcome_dispose(&o);

    /* truncated JSON: by digest, said so */
    static char big[3000];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "[");
    for (int i = 0; n < 2900; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s%d", i ? "," : "", i);
    n += (size_t)snprintf(big + n, sizeof(big) - n, "]");
    mkside(&a, 200, js, big, n, 1);
    mkside(&b, 200, js, big, n, 1);
    a.s.body_len = b.s.body_len = 1000;
    a.s.body_truncated = b.s.body_truncated = 1;
    sf_compare(&c, NULL, &a.s, &b.s, &o);
    ok(o.result == SF_CMP_MATCH && (o.notes & SF_CMP_NOTE_TRUNCATED) && o.body_as == SF_BODY_BYTES,
       "truncated JSON with equal digests matches, compared by digest and noted");
    sf_cmp_outcome_dispose(&o);
    big[10] = big[10] == '1' ? '2' : '1';
    mkside(&b, 200, js, big, n, 1);
    b.s.body_len = 1000;
    b.s.body_truncated = 1;
    sf_compare(&c, NULL, &a.s, &b.s, &o);
    ok(o.result == SF_CMP_MISMATCH && (o.notes & SF_CMP_NOTE_TRUNCATED) &&
           o.body_as == SF_BODY_BYTES && find(&o, "body") != NULL,
       "truncated JSON that differs: compared by digest, a difference at body, noted");
    sf_cmp_outcome_dispose(&o);
}

static void test_invalid_json(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    sf_cmp_outcome o;
    cmp(&c, NULL, "{\"a\":1}", "<html>oops</html>", &o);
    one_diff(&o, SF_CMP_MISMATCH, "body", "\"{\\\"a\\\":1}\" (7 bytes)",
             "\"<html>oops</html>\" (17 bytes)", "json mode: not JSON is a difference at body");
    ok(o.notes & SF_CMP_NOTE_FUNCTION_NOT_JSON, "noted as the function's");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, "{\"a\":", "{\"a\":1}", &o);
    ok(o.result == SF_CMP_MISMATCH && (o.notes & SF_CMP_NOTE_LEGACY_NOT_JSON),
       "legacy's invalid JSON noted as legacy's");
    sf_cmp_outcome_dispose(&o);
    expect(&c, NULL, "not json", "not json", SF_CMP_MATCH, "identical invalid bodies match");
    expect(&c, NULL, "", "", SF_CMP_MATCH, "two empty bodies match");
    expect(&c, NULL, "", "{}", SF_CMP_MISMATCH, "empty is not {}");
    expect(&c, NULL, "[\"\xff\"]", "[\"\xfe\"]", SF_CMP_MISMATCH, "invalid UTF-8 in JSON");
    cmp(&c, NULL, "[\"\xff\"]", "[\"\xfe\"]", &o);
    ok(o.notes & SF_CMP_NOTE_LEGACY_NOT_JSON, "invalid UTF-8 makes it invalid JSON");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, "[1e400]", "[2e400]", &o);
    ok(o.result == SF_CMP_MISMATCH && (o.notes & SF_CMP_NOTE_JSON_UNSUPPORTED) &&
           find(&o, "body") != NULL,
       "a number out of range: compared as bytes, noted");
    sf_cmp_outcome_dispose(&o);
    expect(&c, NULL, "{\"a\":1} x", "{\"a\":1}", SF_CMP_MISMATCH, "trailing garbage is invalid");
    expect(&c, NULL, "{\"\\u0000\":1}", "{\"\\u0000\": 1}", SF_CMP_MISMATCH,
           "a NUL in a key: compared as bytes");
}

static char *nested(int depth, const char *leaf, int spaced)
{
    size_t n = (size_t)depth * 8 + strlen(leaf) + 1, at = 0;
    char *s = malloc(n);
    for (int i = 0; i < depth; i++)
        at += (size_t)snprintf(s + at, n - at, spaced ? "{\"k\": " : "{\"k\":");
    at += (size_t)snprintf(s + at, n - at, "%s", leaf);
    for (int i = 0; i < depth; i++)
        s[at++] = '}';
    s[at] = '\0';
    return s;
}

static void test_deep(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    sf_cmp_outcome o;
    char *a = nested(100, "1", 0), *b = nested(100, "2", 1), *a2 = nested(100, "1", 1);
    cmp(&c, NULL, a, a2, &o);
    ok(o.result == SF_CMP_MATCH && (o.notes & SF_CMP_NOTE_DEEP),
       "100 levels equal (parsed): compared whole past the limit, noted");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, NULL, a, b, &o);
    ok(o.result == SF_CMP_MISMATCH && o.ndiffs == 1 && (o.notes & SF_CMP_NOTE_DEEP),
       "100 levels with a different leaf: one difference");
    size_t segs = 0;
    for (const char *p = o.ndiffs ? o.diffs[0].path : ""; *p; p++)
        segs += *p == '/';
    is((long long)segs, SF_CMP_MAX_DEPTH, "named at the depth limit");
    ok(o.ndiffs && strlen(o.diffs[0].legacy) <= SF_CMP_VALUE_MAX + 3, "its values are bounded");
    sf_cmp_outcome_dispose(&o);
    free(a);
    free(b);
    free(a2);

    a = nested(3000, "1", 0);
    b = nested(3000, "2", 0);
    cmp(&c, NULL, a, b, &o);
    ok(o.result == SF_CMP_MISMATCH && (o.notes & SF_CMP_NOTE_JSON_UNSUPPORTED) &&
           find(&o, "body") != NULL,
       "3000 levels: past the parser, compared as bytes");
    sf_cmp_outcome_dispose(&o);
    free(a);
    free(b);

    /* arrays nested deeper than the renderer's budget */
    static char deep1[4003], deep2[4003];
    memset(deep1, '[', 2000);
    memset(deep1 + 2000, ']', 2000);
    memcpy(deep2, deep1, sizeof(deep1));
    memcpy(deep2 + 1999, "[1]", 3);
    memset(deep2 + 2002, ']', 1999);
    deep2[4001] = '\0';
    deep1[4000] = '\0';
    cmp(&c, NULL, deep1, deep2, &o);
    ok(o.result == SF_CMP_MISMATCH && o.ndiffs == 1, "2000 nested arrays: one difference");
    ok(o.ndiffs && strlen(o.diffs[0].function) <= SF_CMP_VALUE_MAX + 3, "rendered cut");
    sf_cmp_outcome_dispose(&o);
}

static void test_truncated_values(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    sf_cmp_outcome o;
    char a[1200], b[1200];
    memcpy(a, "{\"s\":\"", 6);
    memset(a + 6, 'x', 1000);
    memcpy(a + 1006, "\"}", 3);
    snprintf(b, sizeof(b), "{\"s\":\"y\"}");
    cmp(&c, NULL, a, b, &o);
    const sf_cmp_diff *d = find(&o, "/s");
    ok(d && strlen(d->legacy) == SF_CMP_VALUE_MAX + 3, "a long value is cut to the maximum");
    ok(d && strcmp(d->legacy + SF_CMP_VALUE_MAX, "\xe2\x80\xa6") == 0, "ending with an ellipsis");
    ok(d && strncmp(d->legacy, "\"xxxx", 5) == 0, "starting with the value");
    sf_cmp_outcome_dispose(&o);

    /* two-byte characters: never cut in the middle of one */
    size_t at = 6;
    a[at++] = 'z'; /* an odd start so that the cap falls inside a character */
    for (int i = 0; i < 300; i++) {
        a[at++] = '\xc3';
        a[at++] = '\xa9';
    }
    memcpy(a + at, "\"}", 3);
    cmp(&c, NULL, a, b, &o);
    d = find(&o, "/s");
    size_t len = d ? strlen(d->legacy) : 0;
    ok(d && len <= SF_CMP_VALUE_MAX + 3 && len > SF_CMP_VALUE_MAX - 2 &&
           strcmp(d->legacy + len - 3, "\xe2\x80\xa6") == 0 &&
           (unsigned char)d->legacy[len - 4] == 0xa9,
       "cut at a character boundary");
    sf_cmp_outcome_dispose(&o);

    /* a long key: the path is bounded too */
    char k1[800];
    memcpy(k1, "{\"", 2);
    memset(k1 + 2, 'k', 700);
    memcpy(k1 + 702, "\":1}", 5);
    cmp(&c, NULL, k1, "{}", &o);
    ok(o.ndiffs == 1 && strlen(o.diffs[0].path) <= SF_CMP_PATH_MAX + 3, "a long path is cut");
    sf_cmp_outcome_dispose(&o);
}

static sf_cmp_side *json_side(side_buf *b, const char *body)
{
    static const char *js[] = {"Content-Type: application/json", NULL};
    return mkside(b, 200, js, body, strlen(body), 1);
}

static int is_noise_path(const sf_noise *nz, const char *path)
{
    const char *paths[SF_NOISE_MAX_PATHS];
    size_t n = sf_noise_paths(nz, paths, NULL, SF_NOISE_MAX_PATHS);
    for (size_t i = 0; i < n && i < SF_NOISE_MAX_PATHS; i++)
        if (strcmp(paths[i], path) == 0)
            return 1;
    return 0;
}

static void test_noise(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_AUTO);
    sf_noise *nz = sf_noise_create();
    side_buf a, b;
    sf_cmp_outcome o;
    const char *l1 = "{\"id\":7,\"generated_at\":\"10:00:01\",\"request_id\":\"r1\",\"n\":1}";
    const char *l2 = "{\"id\":7,\"generated_at\":\"10:00:02\",\"request_id\":\"r2\",\"n\":1}";
    const char *fn = "{\"id\":7,\"generated_at\":\"10:00:03\",\"request_id\":\"r3\",\"n\":1}";
    const char *bad = "{\"id\":8,\"generated_at\":\"10:00:03\",\"request_id\":\"r3\",\"n\":1}";

    expect(&c, nz, l1, fn, SF_CMP_MISMATCH, "before learning, a random field is a mismatch");
    is(sf_noise_learn(nz, json_side(&a, l1), json_side(&b, l2)), 2,
       "learning: two paths differ between legacy's answers");
    ok(is_noise_path(nz, "/generated_at") && is_noise_path(nz, "/request_id"),
       "both are noise now");
    ok(!is_noise_path(nz, "/id") && !is_noise_path(nz, "/n"), "stable fields are not");
    is(sf_noise_score(nz, "/request_id"), SF_NOISE_RAISE, "one round raises by SF_NOISE_RAISE");
    is((long long)sf_noise_rounds(nz), 1, "one round counted");

    cmp(&c, nz, l1, fn, &o);
    ok(o.result == SF_CMP_NOISE && o.ndiffs == 2 && o.nnoise == 2 && o.nmismatch == 0,
       "a difference only on noise paths is noise, listing them");
    ok(find(&o, "/request_id") != NULL, "the noise difference is named");
    sf_cmp_outcome_dispose(&o);
    cmp(&c, nz, l1, bad, &o);
    one_diff(&o, SF_CMP_MISMATCH, "/id", "7", "8", "a real difference beside noise: mismatch");
    is((long long)o.nnoise, 2, "the noise beside it counted, not listed");
    sf_cmp_outcome_dispose(&o);

    side_buf sl, sf;
    const char *h500[] = {"Content-Type: application/json", NULL};
    sf_compare(&c, nz, mkside(&sl, 200, h500, l1, strlen(l1), 1),
               mkside(&sf, 503, h500, fn, strlen(fn), 1), &o);
    one_diff(&o, SF_CMP_MISMATCH, "status", "200", "503",
             "a status difference with body noise: a mismatch listing the status only");
    sf_cmp_outcome_dispose(&o);

    /* raised to the cap, then quiet rounds */
    for (int i = 0; i < 10; i++)
        sf_noise_learn(nz, json_side(&a, l1), json_side(&b, l2));
    is(sf_noise_score(nz, "/request_id"), SF_NOISE_SCORE_MAX, "the score is capped");
    const char *q = "{\"id\":7,\"generated_at\":\"10:00:05\",\"request_id\":\"same\",\"n\":1}";
    const char *q2 = "{\"id\":7,\"generated_at\":\"10:00:06\",\"request_id\":\"same\",\"n\":1}";
    const char *other = "{\"something\":\"else\"}";
    for (int i = 0; i < 20; i++) /* a response without the field says nothing about it */
        sf_noise_learn(nz, json_side(&a, other), json_side(&b, other));
    is(sf_noise_score(nz, "/request_id"), SF_NOISE_SCORE_MAX,
       "rounds where the path is absent do not lower it");
    for (int i = 0; i < SF_NOISE_SCORE_MAX - 1; i++)
        sf_noise_learn(nz, json_side(&a, q), json_side(&b, q2));
    is(sf_noise_score(nz, "/request_id"), 1, "each quiet round lowers it by one");
    ok(is_noise_path(nz, "/request_id"), "still noise one round before the end");
    sf_noise_learn(nz, json_side(&a, q), json_side(&b, q2));
    ok(!is_noise_path(nz, "/request_id"), "a field stable for SF_NOISE_SCORE_MAX rounds is not "
                                          "noise any more");
    ok(is_noise_path(nz, "/generated_at"), "while the one still differing stays noise");
    expect(&c, nz, l1, fn, SF_CMP_MISMATCH, "so a difference there is a mismatch again");
    sf_noise_destroy(nz);

    /* array indices learn as * */
    nz = sf_noise_create();
    const char *i1 = "{\"items\":[{\"id\":1,\"etag\":\"a\"},{\"id\":2,\"etag\":\"b\"}]}";
    const char *i2 = "{\"items\":[{\"id\":1,\"etag\":\"c\"},{\"id\":2,\"etag\":\"d\"}]}";
    is(sf_noise_learn(nz, json_side(&a, i1), json_side(&b, i2)), 2, "two elements differ");
    const char *paths[4];
    unsigned scores[4];
    is((long long)sf_noise_paths(nz, paths, scores, 4), 1, "learned as one pattern");
    is_str(paths[0], "/items/*/etag", "with * for the index");
    is(scores[0], SF_NOISE_RAISE, "raised once for the round, not once per element");
    const char *f1 = "{\"items\":[{\"id\":1,\"etag\":\"x\"},{\"id\":2,\"etag\":\"y\"},"
                     "{\"id\":3,\"etag\":\"z\"}]}";
    const char *l3 = "{\"items\":[{\"id\":1,\"etag\":\"p\"},{\"id\":2,\"etag\":\"q\"},"
                     "{\"id\":3,\"etag\":\"r\"}]}";
    expect(&c, nz, l3, f1, SF_CMP_NOISE, "noise on every element's etag, including new indices");
    char many1[4096], many2[4096];
    size_t m1 = 0, m2 = 0;
    m1 += (size_t)snprintf(many1 + m1, sizeof(many1) - m1, "{\"items\":[");
    m2 += (size_t)snprintf(many2 + m2, sizeof(many2) - m2, "{\"items\":[");
    for (int i = 0; i < 50; i++) {
        m1 += (size_t)snprintf(many1 + m1, sizeof(many1) - m1, "%s{\"etag\":%d}", i ? "," : "", i);
        m2 += (size_t)snprintf(many2 + m2, sizeof(many2) - m2, "%s{\"etag\":%d}", i ? "," : "",
                               -i - 1);
    }
    snprintf(many1 + m1, sizeof(many1) - m1, "]}");
    snprintf(many2 + m2, sizeof(many2) - m2, "]}");
    cmp(&c, nz, many1, many2, &o);
    ok(o.result == SF_CMP_NOISE && o.ndiffs == SF_CMP_MAX_DIFFS &&
           o.more == 50 - SF_CMP_MAX_DIFFS && o.nnoise == 50,
       "50 noise differences: a bounded list, the rest counted");
    sf_cmp_outcome_dispose(&o);
    sf_noise_destroy(nz);

    /* a noise path covers what is under it */
    nz = sf_noise_create();
    sf_noise_learn(nz, json_side(&a, "{\"m\":1,\"k\":0}"),
                   json_side(&b, "{\"m\":{\"x\":1},\"k\":0}"));
    ok(is_noise_path(nz, "/m"), "a member that changes type is noise");
    expect(&c, nz, "{\"m\":{\"x\":1,\"y\":[1]},\"k\":0}", "{\"m\":{\"x\":2,\"y\":[2]},\"k\":0}",
           SF_CMP_NOISE, "differences under a noise path are noise");
    expect(&c, nz, "{\"m\":1,\"k\":0}", "{\"m\":1,\"k\":1}", SF_CMP_MISMATCH,
           "a sibling is not under it");
    sf_noise_learn(nz, json_side(&a, "{\"a\":[1]}"), json_side(&b, "{\"a\":[1,2]}"));
    ok(is_noise_path(nz, "/a"), "an array whose length changes is noise at its path");
    ok(is_noise_path(nz, "/a/*"), "and its extra element under *");

    /* what teaches nothing */
    uint64_t rounds = sf_noise_rounds(nz);
    is(sf_noise_learn(nz, json_side(&a, "<html>"), json_side(&b, "<body>")), 0,
       "non-JSON answers teach nothing");
    is(sf_noise_learn(nz, json_side(&a, "[1]"), json_side(&b, "{}")), 0,
       "a root difference teaches no path (it would be everything)");
    ok(!is_noise_path(nz, ""), "the root is never noise");
    json_side(&a, "{\"t\":1}");
    json_side(&b, "{\"t\":2}");
    a.s.body_total = b.s.body_total = 1000;
    is(sf_noise_learn(nz, &a.s, &b.s), 0, "truncated answers teach nothing");
    is((long long)sf_noise_rounds(nz), (long long)rounds + 3, "but count as rounds");
    is(sf_noise_learn(NULL, &a.s, &b.s), 0, "a NULL set is accepted");
    sf_noise_destroy(nz);
    sf_noise_destroy(NULL);
}

static void test_noise_bounded(void)
{
    sf_noise *nz = sf_noise_create();
    side_buf a, b;
    static char d1[40000], d2[40000];
    /* 1000 distinct keys differing in each round, over three rounds */
    for (int round = 0; round < 3; round++) {
        size_t n1 = 0, n2 = 0;
        n1 += (size_t)snprintf(d1 + n1, sizeof(d1) - n1, "{");
        n2 += (size_t)snprintf(d2 + n2, sizeof(d2) - n2, "{");
        for (int i = 0; i < 1000; i++) {
            n1 += (size_t)snprintf(d1 + n1, sizeof(d1) - n1, "%s\"k%d_%d\":1", i ? "," : "", round,
                                   i);
            n2 += (size_t)snprintf(d2 + n2, sizeof(d2) - n2, "%s\"k%d_%d\":2", i ? "," : "", round,
                                   i);
        }
        snprintf(d1 + n1, sizeof(d1) - n1, "}");
        snprintf(d2 + n2, sizeof(d2) - n2, "}");
        is(sf_noise_learn(nz, json_side(&a, d1), json_side(&b, d2)), 1000,
           "round %d: 1000 differing paths seen", round);
    }
    const char *paths[SF_NOISE_MAX_PATHS + 1];
    unsigned scores[SF_NOISE_MAX_PATHS + 1];
    size_t n = sf_noise_paths(nz, paths, scores, SF_NOISE_MAX_PATHS + 1);
    is((long long)n, SF_NOISE_MAX_PATHS, "the set holds at most SF_NOISE_MAX_PATHS paths");
    ok(n > 0 && strncmp(paths[0], "/k0_", 4) == 0, "the first ones stay (a full set of equals is "
                                                   "not churned)");
    int ordered = 1;
    for (size_t i = 1; i < n; i++)
        ordered &= scores[i] <= scores[i - 1];
    ok(ordered, "strongest first");
    is((long long)sf_noise_paths(nz, paths, NULL, 3), SF_NOISE_MAX_PATHS,
       "the count is whole even when fewer are asked for");

    /* a stronger set displaces nothing, but a weak entry gives way */
    const char *x1 = "{\"k0_0\":1,\"fresh\":1}", *x2 = "{\"k0_0\":2,\"fresh\":2}";
    for (int i = 0; i < 3; i++)
        sf_noise_learn(nz, json_side(&a, x1), json_side(&b, x2));
    ok(sf_noise_score(nz, "/fresh") == 0,
       "a new path does not displace paths as strong as a new one");
    /* lower every other path: rounds where they are present and equal */
    const char *eq = "{\"k0_1\":1,\"k0_2\":1}";
    for (int i = 0; i < SF_NOISE_RAISE; i++)
        sf_noise_learn(nz, json_side(&a, eq), json_side(&b, eq));
    is(sf_noise_score(nz, "/k0_1"), 0,
       "a path equal for SF_NOISE_RAISE rounds after one raise "
       "is gone");
    sf_noise_learn(nz, json_side(&a, x1), json_side(&b, x2));
    is(sf_noise_score(nz, "/fresh"), SF_NOISE_RAISE, "a freed place takes a new path");
    sf_noise_destroy(nz);
}

static void test_api_edges(void)
{
    sf_cmp_outcome o;
    side_buf a;
    is(sf_compare(NULL, NULL, NULL, mkside(&a, 200, NULL, "", 0, 0), &o), -1,
       "a NULL side is refused");
    ok(o.result == SF_CMP_MATCH && o.ndiffs == 0, "and the outcome is safe to dispose");
    sf_cmp_outcome_dispose(&o);
    sf_cmp_outcome_dispose(NULL);
    is(sf_compare_bodies(NULL, NULL, "{\"a\":1}", 7, "{\"a\":1.0}", 9, 0, &o), 0,
       "a NULL conf is the defaults");
    ok(o.result == SF_CMP_MATCH && o.body_as == SF_BODY_JSON, "auto with JSON types");
    sf_cmp_outcome_dispose(&o);
    ok(sf_noise_paths(NULL, NULL, NULL, 0) == 0 && sf_noise_score(NULL, "/a") == 0 &&
           sf_noise_rounds(NULL) == 0,
       "queries on a NULL set");
}

/* The quick check and the jansson path give the same outcome for a and b. */
static int same_outcome(const sf_shadow_conf *c, const char *a, size_t la, const char *b, size_t lb)
{
    sf_cmp_outcome x, y;
    int rx = sf_compare_bodies(c, NULL, a, la, b, lb, 0, &x);
    int ry = sf_compare_bodies(c, NULL, a, la, b, lb, SF_CMP_F_JANSSON_ONLY, &y);
    int same = rx == ry && x.result == y.result && x.ndiffs == y.ndiffs && x.more == y.more &&
               x.notes == y.notes && x.body_as == y.body_as;
    for (size_t i = 0; same && i < x.ndiffs; i++)
        same = strcmp(x.diffs[i].path, y.diffs[i].path) == 0 &&
               !!x.diffs[i].legacy == !!y.diffs[i].legacy &&
               !!x.diffs[i].function == !!y.diffs[i].function &&
               (!x.diffs[i].legacy || strcmp(x.diffs[i].legacy, y.diffs[i].legacy) == 0) &&
               (!x.diffs[i].function || strcmp(x.diffs[i].function, y.diffs[i].function) == 0);
    if (!same) {
        diag("with the quick check:");
        show(&x);
        diag("jansson alone:");
        show(&y);
    }
    sf_cmp_outcome_dispose(&x);
    sf_cmp_outcome_dispose(&y);
    return same;
}

static void quick(const sf_shadow_conf *c, const char *a, const char *b, int want, const char *what)
{
    int got = sf_cmp_json_equal(c, a, strlen(a), b, strlen(b));
    if (!ok(got == want, "quick check: %s", what))
        diag("%s vs %s: got %d", a, b, got);
    if (!ok(same_outcome(c, a, strlen(a), b, strlen(b)), "  the same outcome with jansson alone"))
        diag("%s vs %s", a, b);
}

static void test_quick_check(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    quick(&c, "{\"a\":1,\"b\":[true,null]}", "{ \"b\" : [ true , null ] ,\n\"a\":1}", 1,
          "another key order and spacing");
    quick(&c, "[1,100,0.5,-3,0]", "[1.0,1e2,5E-1,-3.000,-0.0]", 1, "numbers spelt otherwise");
    quick(&c, "[10.5,1050,0.05]", "[1.05e1,1.05e+3,5e-2]", 1, "decimal points moved");
    quick(&c, "[9007199254740992]", "[9007199254740992.0]", 1, "an integer at 2^53 and its real");
    quick(&c, "[9007199254740993]", "[9007199254740993.0]", 0,
          "past 2^53 the real may be another integer: not sure");
    quick(&c, "[1]", "[2]", 0, "a different number");
    quick(&c, "[0.1]", "[0.10000000000000001]", 0, "another decimal: not sure (jansson decides)");
    quick(&c, "[\"A/\xc3\xa9\xf0\x9f\x98\x80\"]", "[\"\\u0041\\/\\u00e9\\ud83d\\ude00\"]", 1,
          "escapes decoded, surrogate pairs joined");
    quick(&c, "{\"\\u0061\":1}", "{\"a\":1}", 1, "escaped keys");
    quick(&c, "[\"a\\u0000b\"]", "[ \"a\\u0000b\"]", 1, "NUL in a string");
    quick(&c, "{\"a\\u0000\":1}", "{ \"a\\u0000\":1}", 0, "NUL in a key: jansson refuses it");
    quick(&c, "[\"\\ud800\"]", "[ \"\\ud800\"]", 0, "a lone high surrogate is refused");
    quick(&c, "[\"\\udc00\"]", "[ \"\\udc00\"]", 0, "a lone low surrogate is refused");
    quick(&c, "[\"\\ud800\\u0041\"]", "[ \"\\ud800\\u0041\"]", 0, "a high surrogate without a low");
    quick(&c, "[\"\\x\"]", "[ \"\\x\"]", 0, "an unknown escape");
    quick(&c, "[\"\xff\"]", "[ \"\xff\"]", 0, "ill-formed UTF-8");
    quick(&c, "[\"\xed\xa0\x80\"]", "[ \"\xed\xa0\x80\"]", 0, "an encoded surrogate");
    quick(&c, "[\"\xc0\xaf\"]", "[ \"\xc0\xaf\"]", 0, "an overlong encoding");
    quick(&c, "[\"a\tb\"]", "[ \"a\tb\"]", 0, "a raw control character in a string");
    quick(&c, "[1e400]", "[ 1e400]", 0, "a real that overflows a double: jansson refuses it");
    quick(&c, "[1e-400]", "[ 1e-400]", 1, "a real that underflows is accepted, as jansson does");
    quick(&c, "[9223372036854775807]", "[ 9223372036854775807]", 1, "INT64_MAX");
    quick(&c, "[-9223372036854775808]", "[ -9223372036854775808]", 1, "INT64_MIN");
    quick(&c, "[9223372036854775808]", "[ 9223372036854775808]", 0,
          "past 64 bits: jansson reads the whole document as reals");
    quick(&c, "[01]", "[ 01]", 0, "a leading zero");
    quick(&c, "[1.]", "[ 1.]", 0, "a bare decimal point");
    quick(&c, "[.5]", "[ .5]", 0, "no integer part");
    quick(&c, "[+1]", "[ +1]", 0, "a plus sign");
    quick(&c, "[1e]", "[ 1e]", 0, "an empty exponent");
    quick(&c, "[-]", "[ -]", 0, "a lone minus");
    quick(&c, "[1,]", "[ 1,]", 0, "a trailing comma");
    quick(&c, "{\"a\" 1}", "{ \"a\" 1}", 0, "a missing colon");
    quick(&c, "{\"a\":1,}", "{ \"a\":1,}", 0, "a trailing comma in an object");
    quick(&c, "[tru]", "[ tru]", 0, "a cut literal");
    quick(&c, "[truex]", "[ truex]", 0, "a literal run on");
    quick(&c, "[1] x", " [1] x", 0, "trailing garbage");
    quick(&c, "\xef\xbb\xbf[1]", "\xef\xbb\xbf [1]", 0, "a byte order mark");
    quick(&c, "", " ", 0, "nothing");
    quick(&c, "[1]\x00", " [1]\x00", 1, "(a C string stops at NUL)");
    quick(&c, "{\"a\":1,\"a\":2}", "{\"a\":2}", 0,
          "duplicate keys: not sure (jansson keeps the last)");
    quick(&c, "{\"a\":1,\"x\":0,\"a\":2}", "{\"x\":0,\"a\":1,\"a\":2}", 1,
          "duplicates paired in order: the last with the last");
    quick(&c, "{\"x\":0,\"a\":1,\"a\":2}", "{\"a\":2,\"a\":1,\"x\":0}", 0,
          "duplicates in another order: not sure");
    quick(&c, "{\"a\":1}", "{\"a\":1,\"b\":2}", 0, "a member only the second has");
    quick(&c, "[[1,2]]", "[[1,2,3]]", 0, "an array of another length");
    /* the second body is parsed against the first: keys looked up next to the one paired last,
     * strings and numbers in the same bytes taken as they are */
    quick(&c, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", "{\"d\":4,\"c\":3,\"b\":2,\"a\":1}", 1,
          "keys in reverse order");
    quick(&c, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", "{\"c\":3,\"d\":4,\"a\":1,\"b\":2}", 1,
          "keys rotated");
    quick(&c, "{\"a\":1,\"b\":2,\"c\":3}", "{\"c\":3,\"b\":2,\"c\":3}", 0,
          "a key twice in the second, one missing");
    quick(&c, "{\"x\":0,\"a\":1,\"b\":0,\"a\":2}", "{\"a\":1,\"x\":0,\"a\":2,\"b\":0}", 1,
          "duplicates paired in order among moved keys");
    quick(&c, "{\"k\":1,\"x\":0,\"k\":2}", "{\"x\":0,\"k\":2,\"k\":1}", 0,
          "duplicates in another order next to the key paired last: not sure");
    quick(&c, "{\"kk\":1,\"k\":2}", "{\"k\":2,\"kk\":1}", 1, "a key the prefix of another");
    quick(&c, "{\"\\u0061b\":1,\"c\":2}", "{\"c\":2,\"ab\":1}", 1,
          "a key escaped in the first only");
    quick(&c, "[\"abc\",\"abc\"]", "[\"abc\",\"abc\"x]", 0, "a string run on");
    quick(&c, "[\"abc\"]", "[\"abc", 0, "a string cut");
    quick(&c, "[12,12,12]", "[12,12.,12]", 0, "a number run on into a bare point");
    quick(&c, "[12]", "[12e]", 0, "a number run on into an empty exponent");
    quick(&c, "[12,3]", "[12 ,3]", 1, "a number before spaces");
    quick(&c, "[4294967295,4294967296,1844674407370955]",
          "[4294967295.0,4294967296.00,1844674407370955.000]", 1, "plain decimals past 32 bits");
    quick(&c, "[0.05,-0.5,-0]", "[0.050,-0.50,0.0]", 1, "fractions and zeros");
    quick(&c, "[0.05]", "[-0.05]", 0, "another sign");
    quick(&c, "[0.05]", "[0.5]", 0, "another scale");
    char *deep = nested(SF_CMP_MAX_DEPTH + 1, "1", 0),
         *deep2 = nested(SF_CMP_MAX_DEPTH + 1, "1", 1);
    quick(&c, deep, deep2, 0, "nesting past the depth limit: not sure (noted by jansson)");
    free(deep);
    free(deep2);
    deep = nested(SF_CMP_MAX_DEPTH, "1", 0);
    deep2 = nested(SF_CMP_MAX_DEPTH, "1", 1);
    quick(&c, deep, deep2, 1, "nesting up to the depth limit");
    free(deep);
    free(deep2);

    char *ignore[] = {S("/generated_at"), S("/items/*/etag"), S("/a~1b")};
    c.ignore = ignore;
    c.nignore = 3;
    quick(&c, "{\"id\":1,\"generated_at\":1,\"items\":[{\"etag\":1,\"n\":1},{\"etag\":2}]}",
          "{\"items\":[{\"n\":1,\"etag\":3},{\"etag\":4}],\"id\":1,\"generated_at\":2}", 1,
          "ignored paths differ");
    quick(&c, "{\"id\":1,\"generated_at\":1}", "{\"id\":1}", 1, "an ignored member missing");
    quick(&c, "{\"id\":1}", "{\"id\":1,\"generated_at\":1}", 1, "an ignored member added");
    quick(&c, "{\"id\":1}", "{\"id\":1,\"generated_at\":[1,}", 0,
          "an ignored member added that is not valid JSON");
    quick(&c, "{\"id\":1}", "{\"id\":1,\"generated_at\":[1,2.5e3,\"\\u00e9\",{\"a\":null}]}", 1,
          "an ignored member added, of every kind");
    quick(&c, "{\"items\":[{\"etag\":1}]}", "{\"items\":[{\"etag\":[1}]}", 0,
          "an ignored element that is not valid JSON");
    quick(&c, "{\"a/b\":1}", "{\"a/b\":2}", 1, "an escaped ignore pattern");
    quick(&c, "{\"items\":[{\"n\":1}]}", "{\"items\":[{\"n\":2}]}", 0, "beside an ignored path");
    char *many[QK_MANY], x[] = "/x";
    for (int i = 0; i < QK_MANY; i++)
        many[i] = x;
    c.ignore = many;
    c.nignore = QK_MANY;
    quick(&c, "{\"a\":1}", "{ \"a\":1}", 0, "more ignore patterns than the quick check takes");

    /* big documents: the node array leaves the stack */
    static char big1[200000], big2[200000];
    size_t n1 = 0, n2 = 0;
    n1 += (size_t)snprintf(big1 + n1, sizeof(big1) - n1, "[");
    n2 += (size_t)snprintf(big2 + n2, sizeof(big2) - n2, "[");
    for (int i = 0; i < 3000; i++) {
        n1 += (size_t)snprintf(big1 + n1, sizeof(big1) - n1, "%s{\"i\":%d,\"s\":\"v%d\"}",
                               i ? "," : "", i, i);
        n2 += (size_t)snprintf(big2 + n2, sizeof(big2) - n2, "%s{\"s\":\"v%d\",\"i\":%d.0}",
                               i ? "," : "", i, i);
    }
    snprintf(big1 + n1, sizeof(big1) - n1, "]");
    snprintf(big2 + n2, sizeof(big2) - n2, "]");
    c.nignore = 0;
    quick(&c, big1, big2, 1, "6000 objects reordered");
    /* wide objects: keys in the same order are paired at once, shuffled ones by scanning,
     * within a budget */
    enum { WIDE = 3000 };
    char *w1 = malloc(WIDE * 24), *w2 = malloc(WIDE * 24), *w3 = malloc(WIDE * 24);
    size_t n[3] = {0, 0, 0};
    char *ws[3] = {w1, w2, w3};
    for (int k = 0; k < 3; k++)
        n[k] += (size_t)snprintf(ws[k] + n[k], WIDE * 24 - n[k], "{");
    for (int i = 0; i < WIDE; i++) {
        int r = WIDE - 1 - i;
        n[0] += (size_t)snprintf(w1 + n[0], WIDE * 24 - n[0], "%s\"k%d\":%d", i ? "," : "", i, i);
        n[1] +=
            (size_t)snprintf(w2 + n[1], WIDE * 24 - n[1], "%s \"k%d\" : %d", i ? "," : "", i, i);
        n[2] += (size_t)snprintf(w3 + n[2], WIDE * 24 - n[2], "%s\"k%d\":%d", i ? "," : "", r, r);
    }
    for (int k = 0; k < 3; k++)
        snprintf(ws[k] + n[k], WIDE * 24 - n[k], "}");
    quick(&c, w1, w2, 1, "an object of 3000 members in the same order");
    quick(&c, w1, w3, 0, "3000 members in reverse order: over the budget, not sure");
    /* 100 members reversed: within it */
    snprintf(w1, WIDE * 24, "{");
    snprintf(w3, WIDE * 24, "{");
    for (int i = 0; i < 100; i++) {
        size_t l1 = strlen(w1), l3 = strlen(w3);
        snprintf(w1 + l1, WIDE * 24 - l1, "%s\"k%d\":%d", i ? "," : "", i, i);
        snprintf(w3 + l3, WIDE * 24 - l3, "%s\"k%d\":%d", i ? "," : "", 99 - i, 99 - i);
    }
    snprintf(w1 + strlen(w1), 2, "}");
    snprintf(w3 + strlen(w3), 2, "}");
    quick(&c, w1, w3, 1, "an object of 100 members in reverse order");
    free(w1);
    free(w2);
    free(w3);
}

/* ---- properties over random documents ---- */

static json_t *random_json(int depth)
{
    int kind = (int)(rnd() % (depth > 3 ? 6 : 8));
    switch (kind) {
    case 0:
        return json_integer((json_int_t)(rnd() % 2000) - 1000);
    case 1:
        return json_real((double)(rnd() % 100000) / 64.0);
    case 2: {
        char s[16];
        snprintf(s, sizeof(s), "s%llu\xc3\xa9/~", (unsigned long long)(rnd() % 1000));
        return json_string(s);
    }
    case 3:
        return json_true();
    case 4:
        return json_false();
    case 5:
        return json_null();
    case 6: {
        json_t *a = json_array();
        for (int i = (int)(rnd() % 5); i > 0; i--)
            json_array_append_new(a, random_json(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = (int)(rnd() % 6); i > 0; i--) {
            char k[24];
            snprintf(k, sizeof(k), "k%d%s", (int)(rnd() % 20), rnd() % 4 ? "" : "/~x");
            json_object_set_new(o, k, random_json(depth + 1));
        }
        return o;
    }
    }
}

/* A leaf of v picked at random (its path in path), or NULL when v has none. */
static json_t *pick_leaf(json_t *v, char *path, size_t cap, size_t at)
{
    path[at] = '\0';
    if (json_is_array(v) && json_array_size(v) > 0) {
        size_t i = (size_t)(rnd() % json_array_size(v));
        int n = snprintf(path + at, cap - at, "/%zu", i);
        return pick_leaf(json_array_get(v, i), path, cap, at + (size_t)n);
    }
    if (json_is_object(v) && json_object_size(v) > 0) {
        size_t k = (size_t)(rnd() % json_object_size(v)), i = 0;
        void *it = json_object_iter(v);
        for (; i < k; i++)
            it = json_object_iter_next(v, it);
        const char *key = json_object_iter_key(it);
        path[at++] = '/';
        for (; *key && at + 3 < cap; key++) {
            if (*key == '~' || *key == '/') {
                path[at++] = '~';
                path[at++] = *key == '~' ? '0' : '1';
            } else {
                path[at++] = *key;
            }
        }
        return pick_leaf(json_object_iter_value(it), path, cap, at);
    }
    return json_is_array(v) || json_is_object(v) ? NULL : v;
}

/* ---- another serializer: the same values spelt otherwise ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int dups; /* duplicate keys written */
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_ws(sbuf *b)
{
    static const char *const ws[] = {"", "", " ", "\n  ", "\t", "\r\n"};
    sb_str(b, ws[rnd() % 6]);
}

static void sb_u(sbuf *b, unsigned cp)
{
    char e[8];
    snprintf(e, sizeof(e), rnd() % 2 ? "\\u%04x" : "\\u%04X", cp);
    sb_str(b, e);
}

static void respell_string(sbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    sb_str(b, "\"");
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\')
                sb_str(b, c == '"' ? "\\\"" : "\\\\");
            else if (c < 0x20 || rnd() % 5 == 0)
                sb_u(b, c);
            else if (c == '/' && rnd() % 2)
                sb_str(b, "\\/");
            else
                sb_put(b, s + i, 1);
            i++;
            continue;
        }
        size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        unsigned cp = c & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
        for (size_t j = 1; j < k; j++)
            cp = cp << 6 | (u[i + j] & 0x3f);
        if (rnd() % 3 == 0) {
            if (cp >= 0x10000) {
                sb_u(b, 0xd800 + ((cp - 0x10000) >> 10));
                sb_u(b, 0xdc00 + ((cp - 0x10000) & 0x3ff));
            } else {
                sb_u(b, cp);
            }
        } else {
            sb_put(b, s + i, k);
        }
        i += k;
    }
    sb_str(b, "\"");
}

static void respell(sbuf *b, json_t *v)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        void **its = malloc((n + 1) * sizeof(*its));
        for (void *it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it))
            its[i++] = it;
        for (i = n; i > 1; i--) { /* shuffle */
            size_t j = (size_t)(rnd() % i);
            void *t = its[i - 1];
            its[i - 1] = its[j];
            its[j] = t;
        }
        sb_str(b, "{");
        for (i = 0; i < n; i++) {
            int twice = rnd() % 16 == 0; /* a duplicate with the same value: equal to jansson */
            b->dups += twice;
            for (int t = 0; t <= twice; t++) {
                sb_ws(b);
                respell_string(b, json_object_iter_key(its[i]), json_object_iter_key_len(its[i]));
                sb_ws(b);
                sb_str(b, ":");
                sb_ws(b);
                respell(b, json_object_iter_value(its[i]));
                sb_ws(b);
                if (t < twice || i + 1 < n)
                    sb_str(b, ",");
            }
        }
        sb_str(b, "}");
        free(its);
        break;
    }
    case JSON_ARRAY:
        sb_str(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            sb_ws(b);
            respell(b, json_array_get(v, i));
            sb_ws(b);
            if (i + 1 < json_array_size(v))
                sb_str(b, ",");
        }
        sb_str(b, "]");
        break;
    case JSON_STRING:
        respell_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: {
        long long x = (long long)json_integer_value(v);
        switch (x != 0 ? rnd() % 4 : rnd() % 3) {
        case 0:
            snprintf(num, sizeof(num), "%lld", x);
            break;
        case 1:
            snprintf(num, sizeof(num), "%lld.0", x);
            break;
        case 2:
            snprintf(num, sizeof(num), "%lldE+0", x);
            break;
        default:
            snprintf(num, sizeof(num), "%lld0e-1", x);
            break;
        }
        sb_str(b, num);
        break;
    }
    case JSON_REAL: /* the generator's reals are multiples of 1/64: exact in 10 digits */
        snprintf(num, sizeof(num), rnd() % 2 ? "%.6f" : "%.9e", json_real_value(v));
        sb_str(b, num);
        break;
    case JSON_TRUE:
        sb_str(b, "true");
        break;
    case JSON_FALSE:
        sb_str(b, "false");
        break;
    case JSON_NULL:
        sb_str(b, "null");
        break;
    }
}

/* The quick check's string scan goes eight bytes at a time: a byte that ends the plain run
 * (a quote, a backslash, a control character, a byte past ASCII) at every position of a word,
 * and keys of every length up to past a word, short of one byte or not. */
static void test_quick_scan(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    static const struct {
        const char *ins; /* what goes in the string */
        const char *dec; /* the same character written otherwise, "" when it is refused */
        const char *what;
    } kinds[] = {
        {"\\\"", "\\u0022", "an escaped quote"},
        {"\\\\", "\\u005c", "an escaped backslash"},
        {"\\n", "\\u000a", "an escape"},
        {"\x7f", "\\u007f", "DEL, which needs no escape"},
        {"\xc3\xa9", "\\u00e9", "two-byte UTF-8"},
        {"\xe2\x82\xac", "\\u20ac", "three-byte UTF-8"},
        {"\xf0\x9f\x98\x80", "\\ud83d\\ude00", "four-byte UTF-8"},
        {"\x01", "", "a raw control character"},
        {"\x1f", "", "a raw unit separator"},
        {"\x80", "", "a lone continuation byte"},
        {"\xc3", "", "a cut UTF-8 sequence"},
    };
    int all_ok = 1;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        for (int at = 0; at <= 17; at++) {
            char a[128], b[128];
            int want = kinds[k].dec[0] != '\0';
            snprintf(a, sizeof(a), "{\"k\":\"%.*s%s%.*s\",\"z\":1}", at, "abcdefghijklmnopqr",
                     kinds[k].ins, 17 - at, "ABCDEFGHIJKLMNOPQ");
            snprintf(b, sizeof(b), "{\"z\":1.0,\"k\":\"%.*s%s%.*s\"}", at, "abcdefghijklmnopqr",
                     want ? kinds[k].dec : kinds[k].ins, 17 - at, "ABCDEFGHIJKLMNOPQ");
            int got = sf_cmp_json_equal(&c, a, strlen(a), b, strlen(b));
            if (got != want || !same_outcome(&c, a, strlen(a), b, strlen(b))) {
                all_ok = 0;
                diag("%s at %d: got %d, want %d", kinds[k].what, at, got, want);
            }
        }
    }
    ok(all_ok, "quick check: each kind of byte ending a plain run, at every offset in a word");
    all_ok = 1;
    for (int len = 1; len <= 20; len++) {
        char key[32], other[32], a[128], b[128], d[128];
        memset(key, 'k', (size_t)len);
        key[len] = '\0';
        memcpy(other, key, (size_t)len + 1);
        other[len - 1] = 'x'; /* the same length, the last byte apart */
        snprintf(a, sizeof(a), "{\"%s\":1,\"%s\":2}", key, other);
        snprintf(b, sizeof(b), "{\"%s\":2,\"%s\":1}", other, key);
        snprintf(d, sizeof(d), "{\"%s\":1,\"%s\":2}", other, key);
        int eq = sf_cmp_json_equal(&c, a, strlen(a), b, strlen(b));
        int ne = sf_cmp_json_equal(&c, a, strlen(a), d, strlen(d));
        if (eq != 1 || ne != 0 || !same_outcome(&c, a, strlen(a), d, strlen(d))) {
            all_ok = 0;
            diag("keys of %d bytes: reordered %d (want 1), swapped values %d (want 0)", len, eq,
                 ne);
        }
    }
    ok(all_ok, "quick check: keys of 1 to 20 bytes paired by every byte");
}

static void test_respelled(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    int match_ok = 1, same_ok = 1, quick_ok = 1, quick_yes = 0, with_dups = 0;
    char *ignore[] = {S("/f1/*"), S("/f2/k1")};
    for (int round = 0; round < 300; round++) {
        c.nignore = 0;
        if (round % 3 == 0) {
            c.ignore = ignore;
            c.nignore = 2;
        }
        json_t *doc = json_object();
        for (int i = 0; i < 6; i++) {
            char k[16];
            snprintf(k, sizeof(k), "f%d", i);
            json_object_set_new(doc, k, random_json(0));
        }
        char *a = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII * (round % 2));
        sbuf b = {NULL, 0, 0, 0};
        respell(&b, doc);
        sf_cmp_outcome o;
        cmp(&c, NULL, a, b.p, &o);
        if (o.result != SF_CMP_MATCH && match_ok) {
            match_ok = 0;
            diag("%s vs %s", a, b.p);
            show(&o);
        }
        sf_cmp_outcome_dispose(&o);
        if (same_ok && (!same_outcome(&c, a, strlen(a), b.p, b.len) ||
                        !same_outcome(&c, b.p, b.len, a, strlen(a)))) {
            same_ok = 0;
            diag("%s vs %s", a, b.p);
        }
        int q = sf_cmp_json_equal(&c, a, strlen(a), b.p, b.len);
        quick_yes += q;
        with_dups += b.dups > 0;
        if (b.dups == 0 && !q && quick_ok) {
            quick_ok = 0;
            diag("quick check not sure of %s vs %s", a, b.p);
        }
        /* and respelled, damaged: the two paths still agree */
        for (int k = 0; k < 4 && b.len > 0; k++) {
            size_t at = (size_t)(rnd() % b.len);
            static const char junk[] = "{}[],:\"\\0123456789.eE+-tfnu \xc3\xff";
            b.p[at] = junk[rnd() % (sizeof(junk) - 1)];
            if (same_ok && (!same_outcome(&c, a, strlen(a), b.p, b.len) ||
                            !same_outcome(&c, b.p, b.len, b.p, b.len))) {
                same_ok = 0;
                diag("damaged: %s vs %s", a, b.p);
            }
        }
        free(b.p);
        free(a);
        json_decref(doc);
    }
    ok(match_ok, "300 documents respelt (key order, spacing, escapes, 1.0 for 1, exponents, "
                 "duplicates) match");
    ok(same_ok, "the quick check and jansson alone give the same outcomes, damaged or not");
    ok(quick_ok && quick_yes >= 300 - with_dups,
       "the quick check is sure of every respelt document without duplicate keys (%d of 300, "
       "%d with duplicates)",
       quick_yes, with_dups);
}

static void test_random_properties(void)
{
    sf_shadow_conf c = conf_mode(SF_BODY_JSON);
    int reorder_ok = 1, mutate_ok = 1, fuzz_ok = 1, mutations = 0;
    for (int round = 0; round < 400; round++) {
        json_t *doc = json_object();
        for (int i = 0; i < 6; i++) {
            char k[16];
            snprintf(k, sizeof(k), "f%d", i);
            json_object_set_new(doc, k, random_json(0));
        }
        char *a = json_dumps(doc, JSON_COMPACT);
        char *b = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(1));
        sf_cmp_outcome o;
        cmp(&c, NULL, a, b, &o);
        if (o.result != SF_CMP_MATCH && reorder_ok) {
            reorder_ok = 0;
            diag("reordered copy differs: %s", a);
            show(&o);
        }
        sf_cmp_outcome_dispose(&o);

        char path[512];
        json_t *leaf = pick_leaf(doc, path, sizeof(path), 0);
        if (leaf != NULL && strlen(path) < SF_CMP_PATH_MAX) {
            json_t *copy = json_deep_copy(doc);
            json_t *target = pick_leaf(copy, path, sizeof(path), 0);
            (void)target;
            /* replace the leaf at path with a value of no other type in the generator */
            json_t *parent = copy;
            char seg[512];
            const char *p = path;
            while (*p) {
                const char *e = strchr(p + 1, '/');
                size_t n = e ? (size_t)(e - p - 1) : strlen(p + 1), k = 0;
                for (size_t i = 0; i < n; i++)
                    seg[k++] = p[1 + i] == '~' ? (p[2 + i++] == '0' ? '~' : '/') : p[1 + i];
                seg[k] = '\0';
                int last = e == NULL;
                if (json_is_array(parent)) {
                    size_t idx = strtoul(seg, NULL, 10);
                    if (last)
                        json_array_set_new(parent, idx, json_string("MUTATED"));
                    else
                        parent = json_array_get(parent, idx);
                } else {
                    if (last)
                        json_object_set_new(parent, seg, json_string("MUTATED"));
                    else
                        parent = json_object_get(parent, seg);
                }
                p = e ? e : p + 1 + n;
            }
            char *m = json_dumps(copy, JSON_COMPACT);
            cmp(&c, NULL, a, m, &o);
            mutations++;
            if ((o.result != SF_CMP_MISMATCH || o.ndiffs != 1 ||
                 strcmp(o.diffs[0].path, path) != 0 ||
                 strcmp(o.diffs[0].function, "\"MUTATED\"") != 0) &&
                mutate_ok) {
                mutate_ok = 0;
                diag("mutated %s in %s", path, a);
                show(&o);
            }
            sf_cmp_outcome_dispose(&o);
            free(m);
            json_decref(copy);
        }

        /* random byte damage: anything goes but a crash or a leak */
        size_t len = strlen(a);
        char *dmg = malloc(len + 1);
        memcpy(dmg, a, len + 1);
        for (int k = 0; k < 3 && len > 0; k++)
            dmg[rnd() % len] = (char)(rnd() & 0xff);
        if (cmp(&c, NULL, a, dmg, &o) != 0)
            fuzz_ok = 0;
        sf_cmp_outcome_dispose(&o);
        sf_noise *nz = sf_noise_create();
        side_buf sa, sb;
        if (sf_noise_learn(nz, json_side(&sa, a), json_side(&sb, dmg)) < 0)
            fuzz_ok = 0;
        sf_noise_destroy(nz);
        free(dmg);
        free(a);
        free(b);
        json_decref(doc);
    }
    ok(reorder_ok, "400 random documents match their key-sorted, indented copies");
    ok(mutate_ok && mutations > 100, "a mutated leaf is the one difference, at its path (%d)",
       mutations);
    ok(fuzz_ok, "damaged bytes: compared and learned from without failure");
}

/* ---- cost ---- */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* A product listing of about 2 KB; v changes one price, order puts the keys in another order. */
static size_t product_page(char *buf, size_t cap, int v, int order)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "{\"page\":1,\"total\":20,\"products\":[");
    for (int i = 0; i < 20; i++) {
        double price = 10.5 + i + (v && i == 7 ? 1 : 0);
        if (order)
            n += (size_t)snprintf(buf + n, cap - n,
                                  "%s{\"tags\":[\"a\",\"b\"],\"price\":%.2f,\"name\":\"Product "
                                  "number %d\",\"stock\":%d,\"id\":%d,\"sku\":\"SKU-%05d\"}",
                                  i ? "," : "", price, i, 100 - i, 1000 + i, i);
        else
            n += (size_t)snprintf(buf + n, cap - n,
                                  "%s{\"id\":%d,\"sku\":\"SKU-%05d\",\"name\":\"Product number "
                                  "%d\",\"price\":%.2f,\"stock\":%d,\"tags\":[\"a\",\"b\"]}",
                                  i ? "," : "", 1000 + i, i, i, price, 100 - i);
    }
    n += (size_t)snprintf(buf + n, cap - n, "]}");
    return n;
}

static double time_compare(const sf_shadow_conf *c, const char *a, size_t la, const char *b,
                           size_t lb, unsigned flags, int calls, sf_cmp_result want, int *right)
{
    double t0 = now_ns();
    for (int i = 0; i < calls; i++) {
        sf_cmp_outcome o;
        sf_compare_bodies(c, NULL, a, la, b, lb, flags, &o);
        *right &= o.result == want;
        sf_cmp_outcome_dispose(&o);
    }
    return (now_ns() - t0) / calls;
}

static void bench_compare(void)
{
    enum { CALLS = 3000 };
    static char a[4096], b[4096], r[4096];
    size_t la = product_page(a, sizeof(a), 0, 0);
    size_t lb = product_page(b, sizeof(b), 1, 0);
    size_t lr = product_page(r, sizeof(r), 0, 1);
    sf_shadow_conf c = conf_mode(SF_BODY_AUTO);
    int right = 1;
    double same = time_compare(&c, a, la, a, la, 0, CALLS * 10, SF_CMP_MATCH, &right);
    double reordered = time_compare(&c, a, la, r, lr, 0, CALLS, SF_CMP_MATCH, &right);
    double slow =
        time_compare(&c, a, la, r, lr, SF_CMP_F_JANSSON_ONLY, CALLS / 4, SF_CMP_MATCH, &right);
    double differ = time_compare(&c, a, la, b, lb, 0, CALLS / 4, SF_CMP_MISMATCH, &right);
    ok(right, "the timed comparisons gave the right outcomes (%zu-byte bodies)", la);
    /* figures for the reader, never a pass/fail: timings are not tests */
    diag("sf_compare on %zu-byte JSON bodies: identical %.0f ns, reordered keys %.0f ns (%.0f ns "
         "with jansson alone), one difference %.0f ns (per comparison)",
         la, same, reordered, slow, differ);
}

int main(void)
{
    test_json_equality();
    test_differences();
    test_arrays();
    test_ignore();
    test_status_and_headers();
    test_bytes_mode();
    test_auto_mode();
    test_invalid_json();
    test_deep();
    test_truncated_values();
    test_noise();
    test_noise_bounded();
    test_api_edges();
    test_quick_check();
    test_quick_scan();
    test_random_properties();
    test_respelled();
    bench_compare();
    return done_testing();
}
