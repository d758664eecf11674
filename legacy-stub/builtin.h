/* builtin.h — the endpoints every stand-in server has: /__echo, /__bytes, /__count, /health. */
#ifndef SF_BUILTIN_H
#define SF_BUILTIN_H

struct sf_stub_req;

/* Answers r if its path is a built-in endpoint and returns 1; returns 0 (r untouched) if not. */
int sf_builtin_handle(struct sf_stub_req *r);

/* The built-in endpoints' part of --help. */
extern const char sf_builtin_help[];

#endif
