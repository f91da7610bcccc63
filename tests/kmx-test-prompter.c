/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux test fixture: a Prompter that answers AskSecret as told
 *
 *   kmx-test-prompter --secret S [--delay-ms N] [--mode answer|refuse|vanish|hang]
 *   kmx-test-prompter --sign KEY_PATH --timeout-ms N
 *
 * Registers itself with the keystore, prints "ready", then one line
 * "asked <device path> <hints>" per question on stdout, and "cancel <device
 * path>" when a question is withdrawn.  "refuse" answers
 * with the Cancelled error (the user closed the dialog), "vanish" exits
 * without answering, "hang" never answers.
 *
 * With --sign it is a caller instead, one that gives up waiting: it calls
 * Key.Sign with a D-Bus timeout of N ms, prints "gave up: ERROR" (or
 * "signed"), and stays on the bus until killed.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "kmx-generated.h"
#include "kmx-names.h"

static const char *opt_secret = "";
static const char *opt_mode = "answer";
static int opt_delay_ms = 0;
static const char *opt_sign = NULL;
static int opt_timeout_ms = 1000;

static void
sign_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant)
	    reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);

	if (reply == NULL)
		printf("gave up: %s\n", error->message);
	else
		printf("signed\n");
	fflush(stdout);
}

typedef struct {
	GDBusMethodInvocation *invocation;
} Pending;

static gboolean
answer_cb(gpointer data)
{
	GDBusMethodInvocation *invocation = data;
	if (g_str_equal(opt_mode, "refuse"))
		g_dbus_method_invocation_return_dbus_error(invocation,
							   KMX_DBUS_ERROR_PREFIX "Cancelled",
							   "the user closed the dialog");
	else
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(s)", opt_secret));
	printf("answered\n");
	fflush(stdout);
	return G_SOURCE_REMOVE;
}

static gboolean
handle_ask_secret(KmxDBusPrompter *iface,
		  GDBusMethodInvocation *invocation,
		  const char *device,
		  const char *message,
		  GVariant *hints,
		  gpointer user_data)
{
	g_autofree char *h = g_variant_print(hints, FALSE);

	printf("asked %s %s\n", device, h);
	fflush(stdout);
	if (g_str_equal(opt_mode, "vanish"))
		exit(0);
	if (g_str_equal(opt_mode, "hang")) {
		g_object_ref(invocation); /* never answered */
		return TRUE;
	}
	g_timeout_add(opt_delay_ms, answer_cb, invocation);
	return TRUE;
}

static gboolean
handle_cancel(KmxDBusPrompter *iface, GDBusMethodInvocation *invocation, const char *device)
{
	printf("cancel %s\n", device);
	fflush(stdout);
	kmx_dbus_prompter_complete_cancel(iface, invocation);
	return TRUE;
}

int
main(int argc, char **argv)
{
	const GOptionEntry entries[] = {
	    {"secret", 0, 0, G_OPTION_ARG_STRING, &opt_secret, "the secret to answer", NULL},
	    {"mode", 0, 0, G_OPTION_ARG_STRING, &opt_mode, "answer|refuse|vanish|hang", NULL},
	    {"delay-ms", 0, 0, G_OPTION_ARG_INT, &opt_delay_ms, "wait before answering", NULL},
	    {"sign", 0, 0, G_OPTION_ARG_STRING, &opt_sign, "sign with this key, as a caller", NULL},
	    {"timeout-ms", 0, 0, G_OPTION_ARG_INT, &opt_timeout_ms, "the caller's timeout", NULL},
	    {NULL},
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(GDBusConnection) bus = NULL;
	g_autoptr(KmxDBusPrompter) prompter = kmx_dbus_prompter_skeleton_new();
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
		g_printerr("%s\n", error->message);
		return 2;
	}
	bus = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error);
	if (bus == NULL) {
		g_printerr("%s\n", error->message);
		return 1;
	}
	if (opt_sign != NULL) {
		g_dbus_connection_call(bus,
				       KMX_DBUS_NAME,
				       opt_sign,
				       KMX_DBUS_KEY_INTERFACE,
				       "Sign",
				       g_variant_new_parsed("('ed25519', [byte 1], @a{sv} {})"),
				       G_VARIANT_TYPE("(ay)"),
				       G_DBUS_CALL_FLAGS_NONE,
				       opt_timeout_ms,
				       NULL,
				       sign_cb,
				       NULL);
		g_main_loop_run(loop);
		return 0;
	}
	g_signal_connect(prompter, "handle-ask-secret", G_CALLBACK(handle_ask_secret), NULL);
	g_signal_connect(prompter, "handle-cancel", G_CALLBACK(handle_cancel), NULL);
	if (!g_dbus_interface_skeleton_export(G_DBUS_INTERFACE_SKELETON(prompter),
					      bus,
					      "/org/keymux/TestPrompter",
					      &error)) {
		g_printerr("%s\n", error->message);
		return 1;
	}
	reply = g_dbus_connection_call_sync(bus,
					    KMX_DBUS_NAME,
					    KMX_DBUS_PATH,
					    KMX_DBUS_MANAGER_INTERFACE,
					    "RegisterPrompter",
					    g_variant_new("(o)", "/org/keymux/TestPrompter"),
					    NULL,
					    G_DBUS_CALL_FLAGS_NONE,
					    -1,
					    NULL,
					    &error);
	if (reply == NULL) {
		g_printerr("cannot register: %s\n", error->message);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	g_main_loop_run(loop);
	return 0;
}
