#include "config.h"
#include <glib.h>
int kmx_daemon_placeholder(void);
int main(void) { return kmx_daemon_placeholder(); }
