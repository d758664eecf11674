/* Route matching, path normalization, the cutover decision and the function's target. */
#include "match.h"

#include <string.h>

int sf_path_prefix_match(sf_slice prefix, sf_slice path)
{
    if (path.len < prefix.len || memcmp(path.p, prefix.p, prefix.len) != 0)
        return 0;
    return path.len == prefix.len || (prefix.len > 0 && prefix.p[prefix.len - 1] == '/') ||
           path.p[prefix.len] == '/';
}
