/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxd: the keymux session keystore daemon */
#include "config.h"

#include <errno.h>
#include <glib-unix.h>
#include <locale.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kmx-dbus-service.h"
#include "kmx-error.h"
#include "kmx-manager.h"
#include "kmx-names.h"
#include "kmx-secret.h"
#include "kmx-ssh-agent.h"

typedef struct {
	GMainLoop *loop;
	int status;
} KmxMain;

/* keys live in this process: no core dumps, no ptrace by other processes
 * of the user, no privileges gained through exec; libcrypto keeps its keys
 * in locked memory (freed heap memory is wiped too: kmx-heap-wipe.c) */
static void
kmx_harden_process(void)
{
	struct rlimit no_core = {0, 0};

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		g_warning("cannot make the process non-dumpable: %s", g_strerror(errno));
	if (setrlimit(RLIMIT_CORE, &no_core) != 0)
		g_warning("cannot disable core dumps: %s", g_strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		g_warning("cannot set no-new-privileges: %s", g_strerror(errno));
	umask(0077);
	kmx_secure_memory_init();
}

/* keep the heap near what is in use after a flood of calls (many at once
 * from many callers): the manager trims it when a burst is over
 * (kmx_manager_trim_later()), which only helps if freed memory goes back
 * to malloc, and from few arenas */
/* blocks from this size up are mmapped, whatever was freed before */
#define KMX_MMAP_THRESHOLD (256 * 1024)

static void
kmx_tune_malloc(char **argv)
{
	const char *tunables = g_getenv("GLIBC_TUNABLES");

	/* GLib before 2.76 keeps freed GSlice chunks (every GVariant,
	 * GHashTable and GDBusMessage) in caches it never returns while
	 * the daemon idles: tens of megabytes after a flood.  G_SLICE is
	 * read before main() runs, so start again with it set */
	if (glib_check_version(2, 76, 0) != NULL && g_getenv("G_SLICE") == NULL) {
		/* by its own name: the process name is the file's */
		g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);

		if (self != NULL) {
			g_setenv("G_SLICE", "always-malloc", TRUE);
			execv(self, argv);
			/* no such file any more (replaced): run with the caches */
			g_unsetenv("G_SLICE");
		}
	}
	/* every thread that allocates gets an arena of its own, up to 8 per
	 * core, each keeping its own free memory: a pool thread per core
	 * would each keep one.  Four: with two, the main thread, GDBus's and
	 * the pool wait on each other's locks, and a flood queues up longer.
	 * The environment (MALLOC_ARENA_MAX, GLIBC_TUNABLES) still decides */
	if (g_getenv("MALLOC_ARENA_MAX") == NULL &&
	    (tunables == NULL || strstr(tunables, "arena_max") == NULL))
		mallopt(M_ARENA_MAX, 4);
	/* a large reply (GetManagedObjects of 10,000 keys: megabytes, its
	 * wire copy grown by doubling) in memory of its own, unmapped when
	 * freed.  glibc raises this threshold to the size of every mmapped
	 * block freed, so that after the first large reply the next ones
	 * came from the heap, each leaving its growth steps behind until the
	 * trim: the peak rose with every reply (41 MB after one, 50 MB after
	 * twenty, 10,000 keys).  A fixed threshold keeps it where it is */
	if (g_getenv("MALLOC_MMAP_THRESHOLD_") == NULL &&
	    (tunables == NULL || strstr(tunables, "mmap_threshold") == NULL))
		mallopt(M_MMAP_THRESHOLD, KMX_MMAP_THRESHOLD);
}

/* the systemd unit makes only ~/.local/share/keymux writable: a data dir
 * elsewhere (XDG_DATA_HOME) is read-only there until the user adds it */
static void
kmx_check_data_dir(KmxContext *context)
{
	const char *dir = kmx_context_get_data_dir(context);

	if (g_mkdir_with_parents(dir, 0700) == 0 && access(dir, W_OK) == 0)
		return;
	if (errno != EROFS)
		return;
	if (g_getenv("INVOCATION_ID") != NULL)
		g_printerr("keymuxd: the data dir %s is read-only: the systemd unit makes only "
			   "~/.local/share/keymux writable; add it with 'systemctl --user edit "
			   "keymuxd': [Service] ReadWritePaths=%s\n",
			   dir,
			   dir);
	else
		g_printerr("keymuxd: the data dir %s is read-only: keys cannot be added or "
			   "changed\n",
			   dir);
}

/* the early connection's result: g_bus_get_sync() reports its error */
static void
kmx_main_bus_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	G_GNUC_UNUSED g_autoptr(GDBusConnection) connection = g_bus_get_finish(result, NULL);
}

static gboolean
kmx_main_signal_cb(gpointer user_data)
{
	KmxMain *m = user_data;
	g_info("signal received: locking everything and exiting");
	g_main_loop_quit(m->loop);
	return G_SOURCE_CONTINUE;
}

static void
kmx_main_name_acquired_cb(GDBusConnection *connection, const char *name, gpointer user_data)
{
	g_debug("owning %s", name);
}

static void
kmx_main_name_lost_cb(GDBusConnection *connection, const char *name, gpointer user_data)
{
	KmxMain *m = user_data;

	if (connection == NULL || g_dbus_connection_is_closed(connection))
		g_printerr("keymuxd: lost the connection to the session bus; exiting\n");
	else
		g_printerr(
		    "keymuxd: %s is owned by another keymuxd; use --replace to take it over\n",
		    name);
	m->status = 1;
	g_main_loop_quit(m->loop);
}

static void
kmx_main_closed_cb(GDBusConnection *connection,
		   gboolean remote_peer_vanished,
		   GError *error,
		   gpointer user_data)
{
	KmxMain *m = user_data;
	g_info("the session bus went away; exiting");
	g_main_loop_quit(m->loop);
}

int
main(int argc, char **argv)
{
	gboolean replace = FALSE;
	gboolean verbose = FALSE;
	gboolean version = FALSE;
	const GOptionEntry entries[] = {
	    {"replace", 'r', 0, G_OPTION_ARG_NONE, &replace, "Replace a running keymuxd", NULL},
	    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Print debug messages", NULL},
	    {"version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL},
	    {NULL},
	};
	g_autoptr(GOptionContext) options = g_option_context_new("— the keymux session keystore");
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxContext) context = NULL;
	g_autoptr(KmxManager) manager = NULL;
	g_autoptr(KmxDBusService) service = NULL;
	g_autoptr(KmxSshAgent) agent = NULL;
	g_autoptr(GDBusConnection) connection = NULL;
	g_autoptr(GMainLoop) loop = NULL;
	KmxMain m = {0};
	guint owner_id;

	kmx_tune_malloc(argv);
	setlocale(LC_ALL, "");
	kmx_harden_process();
	g_option_context_add_main_entries(options, entries, NULL);
	if (!g_option_context_parse(options, &argc, &argv, &error)) {
		g_printerr("keymuxd: %s\n", error->message);
		return 2;
	}
	if (version) {
		g_print("keymuxd %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (verbose)
		g_log_set_debug_enabled(TRUE);
	(void)KMX_ERROR; /* register the D-Bus error names before any reply */

	context = kmx_context_new_default(&error);
	if (context == NULL) {
		g_printerr("keymuxd: %s\n", error->message);
		return 1;
	}
	kmx_check_data_dir(context);
	/* the handshake with the bus daemon (connect, authenticate, Hello)
	 * runs on GDBus's thread while the stores load; g_bus_get_sync()
	 * below takes the same connection, or its error */
	g_bus_get(G_BUS_TYPE_SESSION, NULL, kmx_main_bus_cb, NULL);
	manager = kmx_manager_new(context, &error);
	if (manager == NULL) {
		g_printerr("keymuxd: %s\n", error->message);
		return 1;
	}
	connection = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error);
	if (connection == NULL) {
		g_printerr("keymuxd: cannot connect to the session bus (%s); start it in a "
			   "desktop session, or under dbus-run-session\n",
			   error->message);
		return 1;
	}
	g_dbus_connection_set_exit_on_close(connection, FALSE);
	service = kmx_dbus_service_new(manager);
	if (!kmx_dbus_service_export(service, connection, &error)) {
		g_printerr("keymuxd: cannot export the keystore: %s\n", error->message);
		return 1;
	}

	/* a frontend that cannot listen leaves the others running */
	agent = kmx_ssh_agent_new(manager);
	if (!kmx_ssh_agent_start(agent, &error)) {
		g_printerr("keymuxd: the ssh-agent is not served: %s\n", error->message);
		g_clear_error(&error);
	}

	loop = g_main_loop_new(NULL, FALSE);
	m.loop = loop;
	g_signal_connect(connection, "closed", G_CALLBACK(kmx_main_closed_cb), &m);
	g_unix_signal_add(SIGTERM, kmx_main_signal_cb, &m);
	g_unix_signal_add(SIGINT, kmx_main_signal_cb, &m);
	g_unix_signal_add(SIGHUP, kmx_main_signal_cb, &m);
	owner_id = g_bus_own_name_on_connection(connection,
						KMX_DBUS_NAME,
						G_BUS_NAME_OWNER_FLAGS_ALLOW_REPLACEMENT |
						    (replace ? G_BUS_NAME_OWNER_FLAGS_REPLACE : 0),
						kmx_main_name_acquired_cb,
						kmx_main_name_lost_cb,
						&m,
						NULL);
	g_main_loop_run(loop);

	g_bus_unown_name(owner_id);
	/* off the bus as a whole first: no InterfacesRemoved for every key */
	kmx_dbus_service_unexport(service);
	kmx_ssh_agent_stop(agent);
	kmx_manager_shutdown(manager);
	/* what the executors and the backends' watchers posted to the main
	 * loop since it stopped (the state a lock set, a request's result, a
	 * card found) holds references to devices: run it, so that every
	 * device is freed and closes what it holds, a card its PC/SC context
	 * and connection */
	for (guint i = 0; i < 10000 && g_main_context_iteration(NULL, FALSE); i++)
		; /* bounded: a client still calling cannot hold the exit up */
	if (!g_dbus_connection_is_closed(connection))
		g_dbus_connection_flush_sync(connection, NULL, NULL);
	return m.status;
}
