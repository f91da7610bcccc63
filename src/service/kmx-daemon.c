#include "config.h"
#include "kmx-backends.h"
int kmx_daemon_placeholder(void);
int kmx_daemon_placeholder(void) { g_autoptr(GArray) a = kmx_backends_get_types(); return a->len; }
