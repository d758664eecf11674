/* routes.yaml loader: every rule of DESIGN §4 pinned by a file and the exact diagnostics it must
 * give, plus the fields a valid file loads into. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "table.h"

/* A self-signed CA certificate (EC P-256, valid until 2126): a real PEM for tls.ca. */
static const char ca_pem[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBjzCCATWgAwIBAgIUQcJkqlNpbt4wY6pW2mH1uvDe8hEwCgYIKoZIzj0EAwIw\n"
                             "HDEaMBgGA1UEAwwRc3RyYW5nbGVyIHRlc3QgQ0EwIBcNMjYxMTI0MDgwNjA5WhgP\n"
                             "MjEyNjEwMzEwODA2MDlaMBwxGjAYBgNVBAMMEXN0cmFuZ2xlciB0ZXN0IENBMFkw\n"
                             "EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEg5Tefh8Q2cBcRk+KN+1yY0aXzjcqFvOw\n"
                             "eVp0DzLcSGHBoTA5PBfMiJgq66AWUAzP8a3ihuJZ0SMnAdjuyMZWnqNTMFEwHQYD\n"
                             "VR0OBBYEFDjhHRpaPXfT0Ami9NeywPMeWEZVMB8GA1UdIwQYMBaAFDjhHRpaPXfT\n"
                             "0Ami9NeywPMeWEZVMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIh\n"
                             "AL68IFUnmSOXWYWxG9VH72SfqUthjFnhUMElFSGL+eczAiBkOPQx5so6Khktd+12\n"
                             "YJ4py0anNCV6G5AikVmBh/0mOQ==\n"
                             "-----END CERTIFICATE-----\n";

static char dir[PATH_MAX];

/* Lines 1-5 of most cases: two functions, routes start on line 6. */
#define HEAD                                                                                       \
    "legacy: http://127.0.0.1:8081\n"                                                              \
    "functions:\n"                                                                                 \
    "  orders: http://127.0.0.1:8082\n"                                                            \
    "  catalog: https://catalog.example.net\n"                                                     \
    "routes:\n"
/* Lines 1-2: one function and no routes, for function cases (the function starts on line 3). */
#define FHEAD                                                                                      \
    "legacy: http://127.0.0.1:8081\n"                                                              \
    "functions:\n"

#define GROUPS10 "()()()()()()()()()()"
#define GROUPS100                                                                                  \
    GROUPS10 GROUPS10 GROUPS10 GROUPS10 GROUPS10 GROUPS10 GROUPS10 GROUPS10 GROUPS10 GROUPS10

typedef struct {
    const char *name;
    const char *yaml;
    int errors, warnings;
    /* "LINE:COL: message" after the file name, in order; a leading '~' means the line contains
     * the rest (for texts PCRE2 or libc word); {DIR} is the test's folder. */
    const char *diags[8];
} load_case;

static const load_case cases[] = {
    /* top level */
    {"only legacy", "legacy: http://127.0.0.1:8081\n", 0, 0, {NULL}},
    {"null functions and routes",
     "legacy: http://127.0.0.1:8081\nfunctions:\nroutes:\n",
     0,
     0,
     {NULL}},
    {"empty functions and routes",
     "legacy: http://127.0.0.1:8081\nfunctions: {}\nroutes: []\n",
     0,
     0,
     {NULL}},
    {"https legacy", "legacy: https://monolith.example.net\n", 0, 0, {NULL}},
    {"unknown top-level key",
     "legacy: http://127.0.0.1:8081\nroute: []\n",
     1,
     0,
     {"2:1: unknown key 'route' in routes.yaml (known keys: legacy, functions, routes)"}},
    {"legacy missing",
     "functions: {}\n",
     1,
     0,
     {"1:1: legacy is required: the URL of the monolith"}},
    {"legacy with another scheme",
     "legacy: ftp://127.0.0.1\n",
     1,
     0,
     {"1:9: legacy URL 'ftp://127.0.0.1' must start with http:// or https://"}},
    {"legacy is a list", "legacy: [a]\n", 1, 0, {"1:9: legacy must be a single value, not a list"}},
    {"legacy is null",
     "legacy:\n",
     1,
     0,
     {"1:8: legacy needs a URL (http://host:port or https://host)"}},
    {"document is a list", "- a\n", 1, 0, {"1:1: routes.yaml must be a mapping, not a list"}},
    {"key given twice",
     "legacy: http://a:1\nlegacy: http://b:1\n",
     1,
     0,
     {"2:1: legacy is given twice in routes.yaml (first at line 1)"}},
    {"YAML syntax error", "legacy: [a\n", 1, 0, {"~: YAML syntax: "}},
    {"functions is a list",
     "legacy: http://127.0.0.1:8081\nfunctions: [a]\n",
     1,
     0,
     {"2:12: functions must be a mapping of name: URL or name: {url: ...}, not a list"}},
    {"routes is a mapping",
     "legacy: http://127.0.0.1:8081\nroutes: {a: 1}\n",
     1,
     0,
     {"2:9: routes must be a list of routes (- name: ...), not a mapping"}},

    /* functions */
    {"short and long forms",
     FHEAD "  orders: http://127.0.0.1:8082\n"
           "  catalog: {url: 'https://c.example.net/fn', timeout: 250ms}\n",
     0,
     0,
     {NULL}},
    {"unknown key in a function",
     FHEAD "  orders: {url: 'http://127.0.0.1:8082', timeuot: 5s}\n",
     1,
     0,
     {"3:42: unknown key 'timeuot' in function 'orders' (known keys: url, timeout, headers, "
      "tls)"}},
    {"long form without url",
     FHEAD "  orders: {timeout: 5s}\n",
     1,
     0,
     {"3:11: function 'orders' needs a url"}},
    {"invalid function name",
     FHEAD "  'bad name': http://127.0.0.1:8082\n",
     1,
     0,
     {"3:3: function name 'bad name' is invalid: use 1 to 64 letters, digits, '_' or '-'"}},
    {"function name too long",
     FHEAD "  a12345678901234567890123456789012345678901234567890123456789012345: http://h:1\n",
     1,
     0,
     {"~3:3: function name 'a1234567890123456789012345678901234567890123456789012345678901234"
      "5' is invalid"}},
    {"function defined twice",
     FHEAD "  orders: http://127.0.0.1:8082\n  orders: http://127.0.0.1:8083\n",
     1,
     0,
     {"4:3: function 'orders' is already defined at line 3"}},
    {"function is a list",
     FHEAD "  orders: [a]\n",
     1,
     0,
     {"3:11: function 'orders' must be a URL or a mapping with url, not a list"}},
    {"function is null",
     FHEAD "  orders:\n",
     1,
     0,
     {"3:10: function 'orders' needs a URL (http://host:port or https://host)"}},
    {"function URL with a bad port",
     FHEAD "  orders: http://h:99999\n",
     1,
     0,
     {"3:11: function 'orders' URL 'http://h:99999' has an invalid port"}},
    {"function URL with a query",
     FHEAD "  orders: http://h:1/fn?code=1\n",
     1,
     0,
     {"3:11: function 'orders' URL 'http://h:1/fn?code=1' must not have a query or fragment"}},
    {"timeout zero",
     FHEAD "  orders: {url: 'http://h:1', timeout: 0s}\n",
     1,
     0,
     {"3:40: function 'orders': timeout must be greater than zero"}},
    {"timeout over an hour",
     FHEAD "  orders: {url: 'http://h:1', timeout: 61m}\n",
     1,
     0,
     {"3:40: function 'orders': timeout must be at most 1h"}},
    {"timeout without a unit",
     FHEAD "  orders: {url: 'http://h:1', timeout: 5}\n",
     1,
     0,
     {"3:40: function 'orders': timeout must be a duration with a unit (e.g. 250ms, 10s, 2m), "
      "not '5'"}},
    {"function header Host is the proxy's",
     FHEAD "  orders:\n    url: http://h:1\n    headers: {Host: evil.example}\n",
     1,
     0,
     {"5:15: function 'orders': header Host cannot be set here: the proxy sends the function's "
      "URL authority as Host"}},
    {"function header x-forwarded-for is the proxy's",
     FHEAD "  orders:\n    url: http://h:1\n    headers: {X-Forwarded-For: 1.2.3.4}\n",
     1,
     0,
     {"5:15: function 'orders': header X-Forwarded-For cannot be set here: the proxy sets it "
      "from the client's connection"}},
    {"function header transfer-encoding is the proxy's",
     FHEAD "  orders:\n    url: http://h:1\n    headers:\n      transfer-encoding: chunked\n"
           "      connection: close\n",
     2,
     0,
     {"6:7: function 'orders': header transfer-encoding cannot be set here: the proxy frames the "
      "body itself",
      "7:7: function 'orders': header connection cannot be set here: it is a hop-by-hop header "
      "the proxy manages"}},
    {"function header name not a token",
     FHEAD "  orders:\n    url: http://h:1\n    headers: {'x key': v}\n",
     1,
     0,
     {"5:15: function 'orders': header name 'x key' is not a valid HTTP token"}},
    {"function header given twice",
     FHEAD "  orders:\n    url: http://h:1\n    headers: {X-Key: a, x-key: b}\n",
     1,
     0,
     {"5:25: function 'orders': header x-key is given twice (header names are "
      "case-insensitive)"}},
    {"function header value with LF",
     FHEAD "  orders:\n    url: http://h:1\n    headers: {x-key: \"a\\nb\"}\n",
     1,
     0,
     {"5:22: function 'orders': the value of header x-key has a control byte (0x0a): CR, LF, "
      "NUL and other control bytes are not allowed in a header value (tab is)"}},
    {"function header value with DEL",
     FHEAD "  orders:\n    url: http://h:1\n    headers: {x-key: \"a\\x7fb\"}\n",
     1,
     0,
     {"~5:22: function 'orders': the value of header x-key has a control byte (0x7f)"}},
    {"function header value with NUL",
     FHEAD "  orders:\n    url: http://h:1\n    headers: {x-key: \"a\\0b\"}\n",
     1,
     0,
     {"5:22: function 'orders': the value of header x-key contains a NUL byte"}},
    {"function header value with a tab",
     FHEAD "  orders:\n    url: http://h:1\n    headers: {x-key: \"a\\tb\"}\n",
     0,
     0,
     {NULL}},
    {"function headers is a list",
     FHEAD "  orders:\n    url: http://h:1\n    headers: [x-key]\n",
     1,
     0,
     {"5:14: function 'orders': headers must be a mapping of header-name: value"}},
    {"tls on an http URL",
     FHEAD "  orders:\n    url: http://h:1\n    tls: {verify: true}\n",
     1,
     0,
     {"5:10: function 'orders': tls is set but the URL is http://; use https:// or remove tls"}},
    {"tls with an unknown key",
     FHEAD "  catalog:\n    url: https://c.example.net\n    tls: {cert: a.pem}\n",
     1,
     0,
     {"5:11: unknown key 'cert' in tls of function 'catalog' (known keys: ca, verify)"}},
    {"tls.ca relative to the file's folder",
     FHEAD "  catalog:\n    url: https://c.example.net\n    tls: {ca: tls/ca.pem}\n",
     0,
     0,
     {NULL}},
    {"tls.ca missing",
     FHEAD "  catalog:\n    url: https://c.example.net\n    tls: {ca: missing.pem}\n",
     1,
     0,
     {"5:15: function 'catalog': CA file {DIR}/missing.pem cannot be used: No such file or "
      "directory"}},
    {"tls.ca without a certificate",
     FHEAD "  catalog:\n    url: https://c.example.net\n    tls: {ca: junk.pem}\n",
     1,
     0,
     {"5:15: function 'catalog': CA file {DIR}/junk.pem cannot be used: it contains no PEM "
      "certificate (-----BEGIN CERTIFICATE-----)"}},
    {"tls.ca with a broken certificate",
     FHEAD "  catalog:\n    url: https://c.example.net\n    tls: {ca: broken.pem}\n",
     1,
     0,
     {"~5:15: function 'catalog': CA file {DIR}/broken.pem cannot be used: a certificate in it "
      "cannot be read ("}},
    {"tls.ca is a folder",
     FHEAD "  catalog:\n    url: https://c.example.net\n    tls: {ca: tls}\n",
     1,
     0,
     {"5:15: function 'catalog': CA file {DIR}/tls cannot be used: not a regular file"}},
    {"tls.ca from the environment",
     FHEAD
     "  catalog:\n    url: https://c.example.net\n    tls: {ca: '${env:SF_T_CADIR}/ca.pem'}\n",
     0,
     0,
     {NULL}},
    {"verify false is a warning",
     FHEAD "  catalog:\n    url: https://c.example.net\n    tls: {verify: false}\n",
     0,
     1,
     {"5:19: warning: certificate verification is off for function 'catalog': anyone on the "
      "network path can impersonate it"}},
    {"verify not a boolean",
     FHEAD "  catalog:\n    url: https://c.example.net\n    tls: {verify: maybe}\n",
     1,
     0,
     {"5:19: function 'catalog': tls.verify must be true or false, not 'maybe'"}},

    /* ${env:NAME} */
    {"env in the legacy URL", "legacy: 'http://${env:SF_T_HOST}:8081'\n", 0, 0, {NULL}},
    {"missing env variable",
     FHEAD "  catalog:\n    url: https://c.example.net\n"
           "    headers: {x-functions-key: '${env:SF_T_UNSET}'}\n",
     1,
     0,
     {"5:32: environment variable SF_T_UNSET is not set (${env:SF_T_UNSET} in "
      "functions.catalog.headers)"}},
    {"two missing env variables in one string",
     "legacy: 'http://${env:SF_T_UNSET}:${env:SF_T_UNSET2}'\n",
     2,
     0,
     {"1:9: environment variable SF_T_UNSET is not set (${env:SF_T_UNSET} in legacy)",
      "1:9: environment variable SF_T_UNSET2 is not set (${env:SF_T_UNSET2} in legacy)"}},
    {"missing env variable in a function URL",
     FHEAD "  orders: '${env:SF_T_UNSET}'\n",
     1,
     0,
     {"3:11: environment variable SF_T_UNSET is not set (${env:SF_T_UNSET} in functions.orders)"}},
    {"unterminated env reference",
     "legacy: 'http://${env:SF_T_HOST:8081'\n",
     1,
     0,
     {"1:9: unterminated ${env: in legacy: write ${env:NAME}"}},
    {"invalid env variable name",
     "legacy: 'http://${env:1HOST}:8081'\n",
     1,
     0,
     {"1:9: invalid environment variable name '1HOST' in legacy: use letters, digits and _, not "
      "starting with a digit"}},

    /* routes: shape and names */
    {"unknown key in a route",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    cutovr: 5\n",
     1,
     0,
     {"9:5: unknown key 'cutovr' in route 'a' (known keys: name, match, function, rewrite, "
      "cutover, sticky, fallback, shadow, guard)"}},
    {"unknown key in match",
     HEAD "  - name: a\n    match: {path: /a, method: [GET]}\n    function: orders\n",
     1,
     0,
     {"7:23: unknown key 'method' in match of route 'a' (known keys: path, regex, methods, "
      "headers)"}},
    {"route is not a mapping",
     HEAD "  - a\n",
     1,
     0,
     {"6:5: route #1 must be a mapping (name, match, function, ...)"}},
    {"route without a name",
     HEAD "  - match: {path: /a}\n    function: orders\n",
     1,
     0,
     {"6:5: route #1 needs a name"}},
    {"invalid route name",
     HEAD "  - name: a/b\n    match: {path: /a}\n    function: orders\n",
     1,
     0,
     {"6:11: route name 'a/b' is invalid: use 1 to 64 letters, digits, '_', '.' or '-'"}},
    {"route name _default is reserved",
     HEAD "  - name: _default\n    match: {path: /a}\n    function: orders\n",
     1,
     0,
     {"6:11: route name '_default' is reserved: it names unmatched traffic in the stats"}},
    {"duplicate route names",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "  - name: a\n    match: {path: /b}\n    function: orders\n",
     1,
     0,
     {"9:11: route name 'a' is already used by the route at line 6"}},
    {"route without match",
     HEAD "  - name: a\n    function: orders\n",
     1,
     0,
     {"6:5: route 'a' needs a match (a path or a regex)"}},
    {"route without function",
     HEAD "  - name: a\n    match: {path: /a}\n",
     1,
     0,
     {"6:5: route 'a' needs a function (the name of an entry under functions)"}},
    {"undefined function",
     HEAD "  - name: a\n    match: {path: /a}\n    function: order\n",
     1,
     0,
     {"8:15: route 'a': function 'order' is not defined under functions (defined: orders, "
      "catalog)"}},
    {"undefined function and no functions",
     "legacy: http://127.0.0.1:8081\nroutes:\n  - name: a\n    match: {path: /a}\n"
     "    function: orders\n",
     1,
     0,
     {"5:15: route 'a': function 'orders' is not defined under functions (no function is "
      "defined)"}},

    /* match */
    {"neither path nor regex",
     HEAD "  - name: a\n    match: {methods: [GET]}\n    function: orders\n",
     1,
     0,
     {"7:12: route 'a': match needs a path or a regex"}},
    {"both path and regex",
     HEAD "  - name: a\n    match: {path: /a, regex: '^/a'}\n    function: orders\n",
     1,
     0,
     {"7:23: route 'a': match has both path and regex; use one"}},
    {"both regex and path",
     HEAD "  - name: a\n    match:\n      regex: '^/a'\n      path: /a\n    function: orders\n",
     1,
     0,
     {"9:7: route 'a': match has both path and regex; use one"}},
    {"path without a leading slash",
     HEAD "  - name: a\n    match: {path: api}\n    function: orders\n",
     1,
     0,
     {"7:19: route 'a': match.path must start with '/', not 'api'"}},
    {"path with a query",
     HEAD "  - name: a\n    match: {path: '/a?x=1'}\n    function: orders\n",
     1,
     0,
     {"7:19: route 'a': match.path must not contain '?': routes match the path only"}},
    {"path climbing above the root",
     HEAD "  - name: a\n    match: {path: /a/../../b}\n    function: orders\n",
     1,
     0,
     {"7:19: route 'a': match.path '/a/../../b' cannot be normalized safely (an invalid escape, "
      "%00 or '..' above the root)"}},
    {"regex error in a plain scalar",
     HEAD "  - name: a\n    match:\n      regex: ^/a)b\n    function: orders\n",
     1,
     0,
     {"~8:17: route 'a': match.regex does not compile: "}},
    {"regex error in a single-quoted scalar",
     HEAD "  - name: a\n    match:\n      regex: '^/a)b'\n    function: orders\n",
     1,
     0,
     {"~8:18: route 'a': match.regex does not compile: "}},
    {"regex error in a double-quoted scalar",
     HEAD "  - name: a\n    match:\n      regex: \"^/a)b\"\n    function: orders\n",
     1,
     0,
     {"~8:18: route 'a': match.regex does not compile: "}},
    {"regex error after an escape: at the scalar",
     HEAD "  - name: a\n    match:\n      regex: \"^/\\x61)b\"\n    function: orders\n",
     1,
     0,
     {"~8:14: route 'a': match.regex does not compile: "}},
    {"regex error after a quote escape: at the scalar",
     HEAD "  - name: a\n    match:\n      regex: '^/it''s)'\n    function: orders\n",
     1,
     0,
     {"~8:14: route 'a': match.regex does not compile: "}},
    {"regex error before an escape: at the character",
     HEAD "  - name: a\n    match:\n      regex: \"^/a)\\x62\"\n    function: orders\n",
     1,
     0,
     {"~8:18: route 'a': match.regex does not compile: "}},
    {"regex with too many groups",
     HEAD "  - name: a\n    match:\n      regex: '" GROUPS100 "'\n    function: orders\n",
     1,
     0,
     {"8:14: route 'a': match.regex has 100 capture groups; at most 99 are allowed"}},
    {"lowercase method",
     HEAD "  - name: a\n    match: {path: /a, methods: [GET, post]}\n    function: orders\n",
     1,
     0,
     {"7:38: route 'a': methods are case-sensitive: write POST"}},
    {"method listed twice",
     HEAD "  - name: a\n    match: {path: /a, methods: [GET, GET]}\n    function: orders\n",
     1,
     0,
     {"7:38: route 'a': method GET is listed twice in match.methods"}},
    {"empty methods",
     HEAD "  - name: a\n    match: {path: /a, methods: []}\n    function: orders\n",
     1,
     0,
     {"7:32: route 'a': match.methods must list at least one method"}},
    {"method not a token",
     HEAD "  - name: a\n    match: {path: /a, methods: ['GE T']}\n    function: orders\n",
     1,
     0,
     {"7:33: route 'a': 'GE T' in match.methods is not a method name (an HTTP token)"}},
    {"methods not a list",
     HEAD "  - name: a\n    match: {path: /a, methods: GET}\n    function: orders\n",
     1,
     0,
     {"7:32: route 'a': match.methods must be a list of methods, e.g. [GET, HEAD]"}},
    {"match header regex error",
     HEAD "  - name: a\n    match: {path: /a, headers: {x-tenant: '(beta'}}\n"
          "    function: orders\n",
     1,
     0,
     {"~7:49: route 'a': the regex for header x-tenant does not compile: "}},
    {"match header given twice",
     HEAD "  - name: a\n    match: {path: /a, headers: {X-Tenant: a, x-tenant: b}}\n"
          "    function: orders\n",
     1,
     0,
     {"7:46: route 'a': header x-tenant is given twice in match.headers (header names are "
      "case-insensitive)"}},
    {"match header name not a token",
     HEAD "  - name: a\n    match: {path: /a, headers: {'x tenant': a}}\n    function: orders\n",
     1,
     0,
     {"7:33: route 'a': header name 'x tenant' in match.headers is not a valid HTTP token"}},

    /* cutover, sticky, fallback */
    {"cutover -1",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    cutover: -1\n",
     1,
     0,
     {"9:14: route 'a': cutover must be between 0 and 100, not -1"}},
    {"cutover 100.5",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    cutover: 100.5\n",
     1,
     0,
     {"9:14: route 'a': cutover must be between 0 and 100, not 100.5"}},
    {"cutover 12.345",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    cutover: 12.345\n",
     1,
     0,
     {"9:14: route 'a': cutover has more than two decimal places, not 12.345 (the resolution is "
      "0.01%)"}},
    {"cutover 25%",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    cutover: 25%\n",
     1,
     0,
     {"9:14: route 'a': cutover is a number of percent without the sign: write 25, not 25%"}},
    {"cutover true",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    cutover: true\n",
     1,
     0,
     {"9:14: route 'a': cutover must be a number from 0 to 100 (decimals allowed, e.g. 25 or "
      "0.5), not 'true'"}},
    {"cutover a list",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    cutover: [25]\n",
     1,
     0,
     {"9:14: route 'a': cutover must be a single value, not a list"}},
    {"cutover 100.00, 12.340, 0 and sticky none",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    cutover: 100.00\n"
          "  - name: b\n    match: {path: /b}\n    function: orders\n    cutover: 12.340\n"
          "  - name: c\n    match: {path: /c}\n    function: orders\n    cutover: 0\n"
          "    sticky: none\n",
     0,
     0,
     {NULL}},
    {"cutover given twice",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    cutover: 5\n"
          "    cutover: 6\n",
     1,
     0,
     {"10:5: cutover is given twice in route 'a' (first at line 9)"}},
    {"regex asking for UTF mode",
     HEAD "  - name: a\n    match: {regex: '(*UTF)^/a'}\n    function: orders\n",
     1,
     0,
     {"~7:27: route 'a': match.regex does not compile: using UTF is disabled"}},
    {"sticky unknown form",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    sticky: session\n",
     1,
     0,
     {"9:13: route 'a': sticky must be header:NAME, cookie:NAME, client_ip or none, not "
      "'session'"}},
    {"sticky header without a name",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    sticky: 'header:'\n",
     1,
     0,
     {"9:13: route 'a': sticky 'header:' needs a header name, e.g. header:x-user-id"}},
    {"sticky cookie name not a token",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    sticky: 'cookie:a b'\n",
     1,
     0,
     {"9:13: route 'a': sticky cookie name 'a b' is not a valid HTTP token"}},
    {"sticky header name not a token",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    sticky: 'header:x@y'\n",
     1,
     0,
     {"9:13: route 'a': sticky header name 'x@y' is not a valid HTTP token"}},
    {"fallback not a boolean",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    fallback: sometimes\n",
     1,
     0,
     {"9:15: route 'a': fallback must be true or false, not 'sometimes'"}},

    /* rewrite */
    {"rewrite with named and numbered groups",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    rewrite: {regex: '^/a/(?<id>[0-9]+)(.*)$', to: '/o/${id}$2${1}$$'}\n",
     0,
     0,
     {NULL}},
    {"rewrite unknown key",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    rewrite: {regex: '^/a', to: /b, flags: i}\n",
     1,
     0,
     {"9:37: unknown key 'flags' in rewrite of route 'a' (known keys: regex, to)"}},
    {"rewrite without to",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    rewrite: {regex: '^/a'}\n",
     1,
     0,
     {"9:14: route 'a': rewrite needs to (the new path, with $1 for a group)"}},
    {"rewrite refers to a group the regex lacks",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    rewrite: {regex: '^/a(.*)$', to: '/b$2'}\n",
     1,
     0,
     {"9:41: route 'a': rewrite.to refers to group $2 but the regex has 1 capture group"}},
    {"rewrite refers to an unknown name",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    rewrite: {regex: '^/a(?<rest>.*)$', to: '/b${tail}'}\n",
     1,
     0,
     {"9:48: route 'a': rewrite.to refers to ${tail} but the regex has no group named tail"}},
    {"rewrite with a bare $name",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    rewrite: {regex: '^/a(.*)$', to: '/b$x'}\n",
     1,
     0,
     {"9:41: route 'a': rewrite.to has a '$' that is not a reference (at offset 2): write $N or "
      "${N} for a group, ${name} for a named group, $$ for a dollar sign"}},
    {"rewrite with an unterminated ${",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    rewrite: {regex: '^/a(.*)$', to: '/b${1'}\n",
     1,
     0,
     {"9:41: route 'a': rewrite.to has an unterminated ${ (at offset 2)"}},
    {"rewrite regex error",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    rewrite: {regex: '^/a(', to: /b}\n",
     1,
     0,
     {"~9:27: route 'a': rewrite.regex does not compile: "}},

    /* shadow */
    {"shadow with defaults",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    shadow: {}\n",
     0,
     0,
     {NULL}},
    {"shadow unknown key",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    shadow: {percen: 5}\n",
     1,
     0,
     {"9:14: unknown key 'percen' in shadow of route 'a' (known keys: percent, methods, compare, "
      "learn_noise, max_inflight)"}},
    {"shadow compare unknown key",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    shadow: {compare: {bodies: json}}\n",
     1,
     0,
     {"9:24: unknown key 'bodies' in shadow.compare of route 'a' (known keys: status, headers, "
      "body, ignore)"}},
    {"shadow percent over 100",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    shadow: {percent: 150}\n",
     1,
     0,
     {"9:23: route 'a': shadow.percent must be between 0 and 100, not 150"}},
    {"shadow compares too many headers",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    shadow: {compare: {headers: [a, b, c, d, e, f, g, h, i]}}\n",
     1,
     0,
     {"9:33: route 'a': shadow.compare.headers lists 9 headers; at most 8"}},
    {"shadow max_inflight zero",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    shadow: {max_inflight: 0}\n",
     1,
     0,
     {"9:28: route 'a': shadow.max_inflight must be between 1 and 1000000, not 0"}},
    {"shadow methods lowercase",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    shadow: {methods: [get]}\n",
     1,
     0,
     {"9:24: route 'a': methods are case-sensitive: write GET"}},
    {"shadow compare body unknown",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    shadow: {compare: {body: xml}}\n",
     1,
     0,
     {"9:30: route 'a': shadow.compare.body must be auto, bytes, json or none, not 'xml'"}},
    {"shadow ignore not JSON Pointers",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    shadow: {compare: {ignore: [etag, /a~2b, '', /a~0~1/*]}}\n",
     2,
     0,
     {"9:33: route 'a': 'etag' in shadow.compare.ignore is not a JSON Pointer: it must be empty "
      "or start with '/'",
      "9:39: route 'a': '/a~2b' in shadow.compare.ignore is not a JSON Pointer: '~' must be "
      "followed by 0 or 1 (~0 is '~', ~1 is '/')"}},
    {"shadow compare header not a token",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    shadow: {compare: {headers: [content-type, 'a b']}}\n",
     1,
     0,
     {"9:48: route 'a': 'a b' in shadow.compare.headers is not a header name (an HTTP token)"}},

    /* guard */
    {"guard checks nothing",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    guard: {window: 30s}\n",
     1,
     0,
     {"9:12: route 'a': guard checks nothing: set max_error_ratio, max_mismatch_ratio or "
      "max_p99_ratio"}},
    {"guard unknown key",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    guard: {max_error_ratio: 0.1, max_latency: 2}\n",
     1,
     0,
     {"9:35: unknown key 'max_latency' in guard of route 'a' (known keys: window, min_requests, "
      "max_error_ratio, max_mismatch_ratio, max_p99_ratio, dry_run)"}},
    {"guard window out of range",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    guard: {window: 500ms, max_error_ratio: 0.1}\n",
     1,
     0,
     {"9:21: route 'a': guard.window must be between 1s and 5m (the stats keep 5 minutes), not "
      "500ms"}},
    {"guard ratios out of range",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    guard: {max_error_ratio: 1.5, max_p99_ratio: 0, min_requests: 0}\n",
     3,
     0,
     {"9:30: route 'a': guard.max_error_ratio must be between 0 and 1, not 1.5",
      "9:50: route 'a': guard.max_p99_ratio must be greater than 0",
      "9:67: route 'a': guard.min_requests must be between 1 and 1000000000, not 0"}},
    {"guard ratio written as a percentage",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    guard: {max_error_ratio: 5%}\n",
     1,
     0,
     {"9:30: route 'a': guard.max_error_ratio must be a number (e.g. 0.05), not '5%'"}},
    {"guard mismatch ratio without shadow",
     HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
          "    guard: {max_mismatch_ratio: 0.01}\n",
     0,
     1,
     {"9:13: warning: route 'a': guard.max_mismatch_ratio has no effect: the route has no "
      "shadow, so nothing is compared"}},

    /* unreachable routes */
    {"prefix covers a longer prefix",
     HEAD "  - name: api\n    match: {path: /api}\n    function: orders\n"
          "  - name: orders\n    match: {path: /api/orders}\n    function: orders\n",
     0,
     1,
     {"9:11: warning: route 'orders' can never match: route 'api' (line 6) matches every request "
      "it would"}},
    {"slash covers a regex",
     HEAD "  - name: all\n    match: {path: /}\n    function: orders\n"
          "  - name: re\n    match: {regex: '^/x'}\n    function: orders\n",
     0,
     1,
     {"9:11: warning: route 're' can never match: route 'all' (line 6) matches every request it "
      "would"}},
    {"same regex twice",
     HEAD "  - name: a\n    match: {regex: '^/x'}\n    function: orders\n"
          "  - name: b\n    match: {regex: '^/x', methods: [GET]}\n    function: catalog\n",
     0,
     1,
     {"9:11: warning: route 'b' can never match: route 'a' (line 6) matches every request it "
      "would"}},
    {"methods superset covers a subset",
     HEAD "  - name: a\n    match: {path: /a, methods: [GET, POST]}\n    function: orders\n"
          "  - name: b\n    match: {path: /a/b, methods: [POST]}\n    function: orders\n",
     0,
     1,
     {"9:11: warning: route 'b' can never match: route 'a' (line 6) matches every request it "
      "would"}},
    {"methods do not cover every method",
     HEAD "  - name: a\n    match: {path: /a, methods: [GET]}\n    function: orders\n"
          "  - name: b\n    match: {path: /a/b}\n    function: orders\n",
     0,
     0,
     {NULL}},
    {"header condition on the first route only: no warning",
     HEAD "  - name: a\n    match: {path: /a, headers: {x-beta: '1'}}\n    function: orders\n"
          "  - name: b\n    match: {path: /a}\n    function: orders\n",
     0,
     0,
     {NULL}},
    {"different header pattern: no warning",
     HEAD "  - name: a\n    match: {path: /a, headers: {x-beta: '1'}}\n    function: orders\n"
          "  - name: b\n    match: {path: /a, headers: {x-beta: '2'}}\n    function: orders\n",
     0,
     0,
     {NULL}},
    {"same header condition and more: warning",
     HEAD "  - name: a\n    match: {path: /a, headers: {x-beta: '1'}}\n    function: orders\n"
          "  - name: b\n    match: {path: /a, headers: {X-Beta: '1', x-b: c}}\n"
          "    function: orders\n",
     0,
     1,
     {"9:11: warning: route 'b' can never match: route 'a' (line 6) matches every request it "
      "would"}},
    {"prefix is not a segment of the other: no warning",
     HEAD "  - name: a\n    match: {path: /api}\n    function: orders\n"
          "  - name: b\n    match: {path: /apix}\n    function: orders\n",
     0,
     0,
     {NULL}},
    {"specific route first: no warning",
     HEAD "  - name: a\n    match: {path: /api/orders}\n    function: orders\n"
          "  - name: b\n    match: {path: /api}\n    function: orders\n",
     0,
     0,
     {NULL}},

    /* several problems: every one, in file order */
    {"every error in file order",
     "routes:\n"
     "  - name: a\n"
     "    cutover: 12.345\n"
     "    match: {path: x}\n"
     "    function: nope\n"
     "  - name: b\n"
     "    match: {regex: '(', path: /b}\n"
     "    function: orders\n"
     "    sticky: 'cookie:'\n"
     "functions:\n"
     "  orders: {url: 'http://h:1', timeout: 0s}\n"
     "legacy: ftp://x\n",
     8,
     0,
     {"3:14: route 'a': cutover has more than two decimal places, not 12.345 (the resolution is "
      "0.01%)",
      "4:19: route 'a': match.path must start with '/', not 'x'",
      "5:15: route 'a': function 'nope' is not defined under functions (defined: orders)",
      "~7:22: route 'b': match.regex does not compile: ",
      "7:25: route 'b': match has both path and regex; use one",
      "9:13: route 'b': sticky 'cookie:' needs a cookie name, e.g. cookie:session",
      "11:40: function 'orders': timeout must be greater than zero",
      "12:9: legacy URL 'ftp://x' must start with http:// or https://"}},
};

/* s with every {DIR} replaced by the test's folder, in a static buffer. */
static const char *expand(const char *s)
{
    static char out[2048];
    size_t o = 0;
    while (*s && o < sizeof(out) - 1) {
        if (strncmp(s, "{DIR}", 5) == 0) {
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", dir);
            s += 5;
        } else {
            out[o++] = *s++;
        }
    }
    out[o < sizeof(out) ? o : sizeof(out) - 1] = '\0';
    return out;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* Writes text as routes.yaml in the test folder and loads it. */
static sf_route_table *load_text(const char *text, sf_diags *d, char *path, size_t cap)
{
    snprintf(path, cap, "%s/routes.yaml", dir);
    sf_diags_init(d);
    if (write_file(path, text) < 0) {
        diag("cannot write %s", path);
        return NULL;
    }
    return sf_table_load(path, d);
}

static void run_case(const load_case *c)
{
    char path[PATH_MAX + 16];
    sf_diags d;
    sf_route_table *t = load_text(c->yaml, &d, path, sizeof(path));
    size_t want = 0, plen = strlen(path);
    while (want < 8 && c->diags[want] != NULL)
        want++;
    int pass = ok((t != NULL) == (c->errors == 0) && d.errors == c->errors &&
                      d.warnings == c->warnings && d.n == want,
                  "%s: %d error(s), %d warning(s)", c->name, c->errors, c->warnings);
    for (size_t i = 0; i < want && i < d.n; i++) {
        const char *got = d.lines[i];
        if (strncmp(got, path, plen) == 0 && got[plen] == ':')
            got += plen + 1;
        const char *exp = expand(c->diags[i]);
        if (exp[0] == '~') {
            if (!ok(strstr(got, exp + 1) != NULL, "%s: diagnostic %zu", c->name, i + 1)) {
                diag("got  %s", got);
                diag("want ...%s...", exp + 1);
                pass = 0;
            }
        } else if (!is_str(got, exp, "%s: diagnostic %zu", c->name, i + 1)) {
            pass = 0;
        }
    }
    if (!pass) {
        diag("%d error(s), %d warning(s):", d.errors, d.warnings);
        for (size_t i = 0; i < d.n; i++)
            diag("  %s", d.lines[i]);
    }
    sf_table_unref(t);
    sf_diags_dispose(&d);
}

/* The example of DESIGN §4, verbatim but for the CA path (a file this test wrote). */
static const char design_example[] =
    "legacy: http://127.0.0.1:8081             # the monolith\n"
    "functions:                                 # named function endpoints\n"
    "  orders: http://127.0.0.1:8082\n"
    "  catalog:\n"
    "    url: https://catalog-fn.example.net\n"
    "    timeout: 5s\n"
    "    headers: { x-functions-key: \"${env:CATALOG_KEY}\" }\n"
    "    tls: { ca: tls/ca.pem, verify: true }\n"
    "routes:\n"
    "  - name: orders\n"
    "    match:\n"
    "      path: /api/orders\n"
    "      # regex: '^/api/orders/[0-9]+$'\n"
    "      methods: [GET, HEAD, POST]\n"
    "      headers: { x-tenant: '^beta-' }\n"
    "    function: orders\n"
    "    rewrite: { regex: '^/api/orders(.*)$', to: '/orders$1' }\n"
    "    cutover: 25\n"
    "    sticky: header:x-user-id\n"
    "    fallback: true\n"
    "    shadow:\n"
    "      percent: 100\n"
    "      methods: [GET, HEAD]\n"
    "      compare:\n"
    "        status: true\n"
    "        headers: [content-type]\n"
    "        body: auto\n"
    "        ignore: [/generated_at, /items/*/etag]\n"
    "      learn_noise: true\n"
    "    guard:\n"
    "      window: 60s\n"
    "      min_requests: 100\n"
    "      max_error_ratio: 0.05\n"
    "      max_mismatch_ratio: 0.01\n"
    "      max_p99_ratio: 3.0\n"
    "      dry_run: false\n";

static void test_design_example(void)
{
    char path[PATH_MAX + 16], ca[PATH_MAX + 16];
    sf_diags d;
    size_t nf = 0, nr = 0;
    setenv("CATALOG_KEY", "s3cret-key", 1);
    sf_route_table *t = load_text(design_example, &d, path, sizeof(path));
    unsetenv("CATALOG_KEY");
    if (!ok(t != NULL && d.n == 0, "design example: loads with no diagnostics")) {
        sf_diags_print(&d, stderr);
        sf_diags_dispose(&d);
        sf_table_unref(t);
        return;
    }
    sf_diags_dispose(&d);
    is_str(sf_table_path(t), path, "design example: path as given");
    const char *v = sf_table_version(t);
    is((long long)strlen(v), 16, "design example: version is 16 characters");
    is((long long)strspn(v, "0123456789abcdef"), 16, "design example: version is lowercase hex");

    const sf_upstream_url *legacy = sf_table_legacy(t);
    is_str(legacy->host, "127.0.0.1", "legacy host");
    is(legacy->port, 8081, "legacy port");
    is(legacy->tls, 0, "legacy is http");

    const sf_function *f = sf_table_functions(t, &nf);
    is((long long)nf, 2, "two functions");
    if (nf != 2)
        goto out;
    is_str(f[0].name, "orders", "function 0 is orders (file order)");
    is_str(f[0].url.authority, "127.0.0.1:8082", "orders authority");
    is((long long)f[0].timeout_ms, 0, "orders timeout absent: 0");
    is((long long)f[0].nheaders, 0, "orders has no headers");
    ok(f[0].tls_ca == NULL, "orders uses the system's CA store");
    is(f[0].tls_verify, 1, "orders verifies certificates by default");
    is(f[0].line, 3, "orders defined at line 3");
    is_str(f[1].name, "catalog", "function 1 is catalog");
    is(f[1].url.tls, 1, "catalog is https");
    is(f[1].url.port, 443, "catalog default port 443");
    is_str(f[1].url.authority, "catalog-fn.example.net", "catalog authority without port");
    is_str(f[1].url.path, "", "catalog has no path prefix");
    is((long long)f[1].timeout_ms, 5000, "catalog timeout_ms 5000");
    is((long long)f[1].nheaders, 1, "catalog has one header");
    if (f[1].nheaders == 1) {
        is_str(f[1].headers[0].name, "x-functions-key", "catalog header name");
        is_str(f[1].headers[0].value, "s3cret-key", "catalog header value from ${env:CATALOG_KEY}");
        is((long long)f[1].headers[0].name_len, 15, "catalog header name_len");
        is((long long)f[1].headers[0].value_len, 10, "catalog header value_len");
    }
    snprintf(ca, sizeof(ca), "%s/tls/ca.pem", dir);
    is_str(f[1].tls_ca, ca, "catalog tls.ca resolved against the file's folder");
    ok(f[1].tls_ca != NULL && f[1].tls_ca[0] == '/', "catalog tls.ca is absolute");
    is(f[1].tls_verify, 1, "catalog verify: true");
    is(f[1].line, 4, "catalog defined at line 4");

    const sf_route *r = sf_table_routes(t, &nr);
    is((long long)nr, 1, "one route");
    if (nr != 1)
        goto out;
    ok(sf_table_route(t, "orders") == &r[0], "sf_table_route finds orders");
    ok(sf_table_route(t, "nope") == NULL, "sf_table_route: unknown name is NULL");
    is_str(r->name, "orders", "route name");
    is((long long)r->name_len, 6, "route name_len");
    is((long long)r->index, 0, "route index");
    is(r->line, 10, "route line");
    is(r->col, 5, "route col");
    is_str(r->path, "/api/orders", "route path");
    is((long long)r->path_len, 11, "route path_len");
    ok(r->regex == NULL && r->regex_src == NULL, "route uses path, not regex");
    is((long long)r->nmethods, 3, "three methods");
    if (r->nmethods == 3) {
        is_str(r->methods[0], "GET", "method 1");
        is_str(r->methods[1], "HEAD", "method 2");
        is_str(r->methods[2], "POST", "method 3");
    }
    is((long long)r->nheaders, 1, "one header condition");
    if (r->nheaders == 1) {
        is_str(r->headers[0].name, "x-tenant", "header condition name");
        is((long long)r->headers[0].name_len, 8, "header condition name_len");
        is_str(r->headers[0].pattern, "^beta-", "header condition pattern");
        ok(r->headers[0].re != NULL, "header condition compiled");
    }
    ok(r->function == &f[0], "function points into the table's functions");
    is((long long)r->function_index, 0, "function_index");
    is(r->cutover_bp, 2500, "cutover 25 -> 2500 bp");
    is(r->sticky, SF_STICKY_HEADER, "sticky header");
    is_str(r->sticky_name, "x-user-id", "sticky header name");
    is((long long)r->sticky_len, 9, "sticky_len");
    is(r->fallback, 1, "fallback true");
    is_str(r->rewrite_src, "^/api/orders(.*)$", "rewrite regex source");
    is_str(r->rewrite_to, "/orders$1", "rewrite to");
    if (ok(r->rewrite_re != NULL, "rewrite compiled")) {
        PCRE2_UCHAR out[64];
        PCRE2_SIZE outlen = sizeof(out);
        int rc = pcre2_substitute(r->rewrite_re, (PCRE2_SPTR) "/api/orders/7", 13, 0, 0, NULL, NULL,
                                  (PCRE2_SPTR)r->rewrite_to, PCRE2_ZERO_TERMINATED, out, &outlen);
        is(rc, 1, "rewrite substitutes once");
        is_mem(out, outlen, "/orders/7", 9, "rewrite /api/orders/7 -> /orders/7");
    }
    const sf_shadow_conf *sh = &r->shadow;
    is(sh->enabled, 1, "shadow enabled");
    is(sh->percent_bp, 10000, "shadow percent 100 -> 10000 bp");
    is((long long)sh->nmethods, 2, "shadow methods");
    if (sh->nmethods == 2) {
        is_str(sh->methods[0], "GET", "shadow method 1");
        is_str(sh->methods[1], "HEAD", "shadow method 2");
    }
    is(sh->compare_status, 1, "compare status");
    is((long long)sh->ncompare_headers, 1, "compare one header");
    if (sh->ncompare_headers == 1)
        is_str(sh->compare_headers[0], "content-type", "compare header");
    is(sh->body_mode, SF_BODY_AUTO, "compare body auto");
    is((long long)sh->nignore, 2, "two ignored pointers");
    if (sh->nignore == 2) {
        is_str(sh->ignore[0], "/generated_at", "ignore 1");
        is_str(sh->ignore[1], "/items/*/etag", "ignore 2");
    }
    is(sh->learn_noise, 1, "learn_noise");
    const sf_guard_conf *g = &r->guard;
    is(g->enabled, 1, "guard enabled");
    is((long long)g->window_ms, 60000, "guard window");
    is((long long)g->min_requests, 100, "guard min_requests");
    ok(g->max_error_ratio == 0.05, "guard max_error_ratio 0.05");
    ok(g->max_mismatch_ratio == 0.01, "guard max_mismatch_ratio 0.01");
    ok(g->max_p99_ratio == 3.0, "guard max_p99_ratio 3.0");
    is(g->dry_run, 0, "guard dry_run false");
out:
    sf_table_unref(t);
}

static const char forms_yaml[] =
    "legacy: 'https://${env:SF_T_HOST}:8443/base/'\n"
    "functions:\n"
    "  a: http://[::1]:9000/fn/\n"
    "  b:\n"
    "    url: http://127.0.0.1:9001\n"
    "    headers: {X-Note: 'a$b ${x} $ ${env:SF_T_HOST}/${env:SF_T_HOST}', x-empty: ''}\n"
    "routes:\n"
    "  - name: half\n"
    "    match: {path: /h}\n"
    "    function: a\n"
    "    cutover: 0.5\n"
    "  - name: third\n"
    "    match: {regex: '^/t'}\n"
    "    function: b\n"
    "    cutover: 33.33\n"
    "  - name: all\n"
    "    match: {path: '/all/./x/../%7Ey'}\n"
    "    function: a\n"
    "    cutover: 100\n"
    "  - name: none.v2\n"
    "    match: {path: /n}\n"
    "    function: a\n"
    "    sticky: cookie:sid\n"
    "  - name: ip_1\n"
    "    match: {path: /ip}\n"
    "    function: a\n"
    "    sticky: client_ip\n"
    "    cutover: 12.50\n"
    "    shadow:\n"
    "      percent: 12.5\n"
    "      methods: [GET, POST]\n"
    "      compare: {status: false, headers: [Content-Type, ETag], body: json,\n"
    "                ignore: ['', '/a~0~1/*']}\n"
    "    guard: {window: 2m, min_requests: 10, max_p99_ratio: 2.5, dry_run: true}\n";

static void test_forms(void)
{
    char path[PATH_MAX + 16];
    sf_diags d;
    size_t nf = 0, nr = 0;
    sf_route_table *t = load_text(forms_yaml, &d, path, sizeof(path));
    if (!ok(t != NULL && d.n == 0, "short forms and decimals: loads")) {
        sf_diags_print(&d, stderr);
        sf_diags_dispose(&d);
        sf_table_unref(t);
        return;
    }
    sf_diags_dispose(&d);
    const sf_upstream_url *l = sf_table_legacy(t);
    is(l->tls, 1, "https legacy");
    is(l->port, 8443, "legacy port");
    is_str(l->authority, "127.0.0.1:8443", "legacy authority from ${env:SF_T_HOST}");
    is_str(l->path, "/base", "legacy path without the trailing slash");
    const sf_function *f = sf_table_functions(t, &nf);
    is((long long)nf, 2, "two functions");
    if (nf == 2) {
        is_str(f[0].url.host, "::1", "IPv6 host without brackets");
        is_str(f[0].url.authority, "[::1]:9000", "IPv6 authority");
        is_str(f[0].url.path, "/fn", "function path prefix");
        is((long long)f[1].nheaders, 2, "two headers");
        if (f[1].nheaders == 2) {
            is_str(f[1].headers[0].value, "a$b ${x} $ 127.0.0.1/127.0.0.1",
                   "'$' and '${x}' are literal; two ${env:} references expand");
            is_str(f[1].headers[1].value, "", "an empty header value is allowed");
            is((long long)f[1].headers[1].value_len, 0, "empty value_len");
        }
    }
    const sf_route *r = sf_table_routes(t, &nr);
    is((long long)nr, 5, "five routes");
    if (nr != 5)
        goto out;
    is(r[0].cutover_bp, 50, "cutover 0.5 -> 50");
    is(r[1].cutover_bp, 3333, "cutover 33.33 -> 3333");
    is(r[2].cutover_bp, 10000, "cutover 100 -> 10000");
    is(r[3].cutover_bp, 0, "cutover absent -> 0");
    is(r[4].cutover_bp, 1250, "cutover 12.50 -> 1250");
    ok(r[1].regex != NULL && r[1].path == NULL, "regex route has no path");
    is_str(r[1].regex_src, "^/t", "regex source kept");
    ok(r[1].function == &f[1] && r[1].function_index == 1, "route third uses function b");
    is_str(r[2].path, "/all/~y", "path stored normalized");
    is((long long)r[2].path_len, 7, "normalized path_len");
    ok(r[0].methods == NULL && r[0].nmethods == 0, "no methods: every method");
    is(r[0].sticky, SF_STICKY_NONE, "sticky defaults to none");
    ok(r[0].sticky_name == NULL, "no sticky name");
    is(r[0].fallback, 0, "fallback defaults to false");
    is(r[0].shadow.enabled, 0, "no shadow");
    is(r[0].guard.enabled, 0, "no guard");
    ok(r[0].rewrite_re == NULL && r[0].rewrite_to == NULL, "no rewrite");
    is(r[3].sticky, SF_STICKY_COOKIE, "sticky cookie");
    is_str(r[3].sticky_name, "sid", "sticky cookie name");
    is((long long)r[3].sticky_len, 3, "sticky cookie name length");
    is(r[4].sticky, SF_STICKY_CLIENT_IP, "sticky client_ip");
    is((long long)r[4].index, 4, "index of the fifth route");
    const sf_shadow_conf *sh = &r[4].shadow;
    is(sh->percent_bp, 1250, "shadow percent 12.5 -> 1250");
    is((long long)sh->nmethods, 2, "shadow methods as listed");
    if (sh->nmethods == 2)
        is_str(sh->methods[1], "POST", "shadow POST when listed");
    is(sh->compare_status, 0, "compare status false");
    is((long long)sh->ncompare_headers, 2, "two compared headers");
    if (sh->ncompare_headers == 2) {
        is_str(sh->compare_headers[0], "content-type", "compared header stored lowercase");
        is_str(sh->compare_headers[1], "etag", "compared header stored lowercase 2");
    }
    is(sh->body_mode, SF_BODY_JSON, "compare body json");
    is((long long)sh->nignore, 2, "two pointers");
    if (sh->nignore == 2) {
        is_str(sh->ignore[0], "", "the empty pointer (whole document)");
        is_str(sh->ignore[1], "/a~0~1/*", "escapes kept as written");
    }
    is(sh->learn_noise, 0, "learn_noise defaults to false");
    const sf_guard_conf *g = &r[4].guard;
    is((long long)g->window_ms, 120000, "guard window 2m");
    is((long long)g->min_requests, 10, "guard min_requests");
    ok(g->max_error_ratio < 0 && g->max_mismatch_ratio < 0, "absent ratios are -1");
    ok(g->max_p99_ratio == 2.5, "max_p99_ratio 2.5");
    is(g->dry_run, 1, "dry_run");
    ok(sf_table_route(t, "none.v2") == &r[3], "lookup by a name with a dot");
out:
    sf_table_unref(t);
}

static void test_shadow_defaults_and_refs(void)
{
    char path[PATH_MAX + 16];
    sf_diags d;
    size_t nr = 0;
    sf_route_table *t =
        load_text(HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n    shadow: {}\n",
                  &d, path, sizeof(path));
    sf_diags_dispose(&d);
    if (!ok(t != NULL, "shadow defaults: loads"))
        return;
    const sf_route *r = sf_table_routes(t, &nr);
    is(r->shadow.enabled, 1, "an empty shadow block enables shadowing");
    is(r->shadow.percent_bp, 10000, "shadow percent defaults to 100");
    is((long long)r->shadow.nmethods, 2, "shadow methods default to two");
    if (r->shadow.nmethods == 2) {
        is_str(r->shadow.methods[0], "GET", "default shadow method GET");
        is_str(r->shadow.methods[1], "HEAD", "default shadow method HEAD");
    }
    is(r->shadow.compare_status, 1, "compare status defaults to true");
    is(r->shadow.body_mode, SF_BODY_AUTO, "compare body defaults to auto");
    is((long long)r->shadow.max_inflight, SF_SHADOW_ROUTE_INFLIGHT, "a route's shadow cap default");
    char v1[17];
    snprintf(v1, sizeof(v1), "%s", sf_table_version(t));
    ok(sf_table_ref(t) == t, "ref returns the table");
    sf_table_unref(t);
    is_str(sf_table_version(t), v1, "still alive after one unref of two");
    sf_table_unref(t);

    t = load_text(HEAD "  - name: a\n    match: {path: /a}\n    function: orders\n"
                       "    shadow: {max_inflight: 7}\n",
                  &d, path, sizeof(path));
    sf_diags_dispose(&d);
    ok(t != NULL && sf_table_routes(t, &nr)->shadow.max_inflight == 7, "shadow.max_inflight");
    sf_table_unref(t);

    t = load_text(HEAD "  - name: a\n    match: {path: /b}\n    function: orders\n", &d, path,
                  sizeof(path));
    sf_diags_dispose(&d);
    ok(t != NULL && strcmp(sf_table_version(t), v1) != 0, "another file, another version");
    sf_table_unref(t);
}

static void test_unreadable(void)
{
    char path[PATH_MAX + 32], want[PATH_MAX + 96];
    sf_diags d;
    sf_diags_init(&d);
    snprintf(path, sizeof(path), "%s/absent.yaml", dir);
    sf_route_table *t = sf_table_load(path, &d);
    ok(t == NULL && d.errors == 1, "a missing file is one error");
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
    is_str(d.n ? d.lines[0] : NULL, want, "a missing file names the file and the reason");
    sf_diags_dispose(&d);
    sf_table_unref(t);

    t = load_text("", &d, path, sizeof(path));
    ok(t == NULL && d.errors == 1, "an empty file is an error");
    sf_diags_dispose(&d);
}

static const char *const fixtures[] = {"tls/ca.pem", "junk.pem", "broken.pem", "routes.yaml"};

static int setup(void)
{
    char p[PATH_MAX + 32];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/test_table.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(p, sizeof(p), "%s/tls", dir);
    if (mkdir(p, 0700) < 0)
        return -1;
    snprintf(p, sizeof(p), "%s/tls/ca.pem", dir);
    if (write_file(p, ca_pem) < 0)
        return -1;
    snprintf(p, sizeof(p), "%s/junk.pem", dir);
    if (write_file(p, "not a certificate\n") < 0)
        return -1;
    snprintf(p, sizeof(p), "%s/broken.pem", dir);
    if (write_file(p, "-----BEGIN CERTIFICATE-----\nMIIBjzCC!!!!\n-----END CERTIFICATE-----\n") < 0)
        return -1;
    snprintf(p, sizeof(p), "%s/tls", dir);
    setenv("SF_T_CADIR", p, 1);
    setenv("SF_T_HOST", "127.0.0.1", 1);
    unsetenv("SF_T_UNSET");
    unsetenv("SF_T_UNSET2");
    return 0;
}

/* Tools that edit the file outside the proxy's environment load it with placeholders. */
static void test_env_placeholders(void)
{
    static const char text[] = "legacy: http://127.0.0.1:8081\n"
                               "functions:\n"
                               "  fn:\n"
                               "    url: http://127.0.0.1:8082\n"
                               "    headers: { x-key: \"${env:SF_TEST_SURELY_UNSET}\" }\n"
                               "routes: []\n";
    char path[PATH_MAX + 32];
    sf_diags d;
    unsetenv("SF_TEST_SURELY_UNSET");
    sf_route_table *t = load_text(text, &d, path, sizeof(path));
    ok(t == NULL && d.errors == 1, "an unset ${env:} is an error for the proxy");
    sf_diags_dispose(&d);
    sf_diags_init(&d);
    t = sf_table_load_ex(path, &d, SF_TABLE_ENV_PLACEHOLDERS);
    ok(t != NULL && d.errors == 0 && d.warnings == 1,
       "with SF_TABLE_ENV_PLACEHOLDERS it loads with one warning");
    if (t != NULL) {
        size_t n;
        const sf_function *f = sf_table_functions(t, &n);
        is_str(f[0].headers[0].value, "env-SF_TEST_SURELY_UNSET", "the placeholder is env-NAME");
    }
    if (d.n > 0)
        ok(strstr(d.lines[0], "5:23: warning: environment variable SF_TEST_SURELY_UNSET is not "
                              "set here") != NULL,
           "the warning is located: %s", d.lines[0]);
    sf_table_unref(t);
    sf_diags_dispose(&d);
}

static void cleanup(void)
{
    char p[PATH_MAX + 32];
    for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, fixtures[i]);
        unlink(p);
    }
    snprintf(p, sizeof(p), "%s/tls", dir);
    rmdir(p);
    rmdir(dir);
}

int main(void)
{
    if (setup() < 0) {
        printf("Bail out! cannot set up a test folder under /tmp\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
    test_design_example();
    test_forms();
    test_shadow_defaults_and_refs();
    test_unreadable();
    test_env_placeholders();
    cleanup();
    return done_testing();
}
