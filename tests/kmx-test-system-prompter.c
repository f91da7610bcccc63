/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux test fixture: gcr's own mock system prompter, on the test's bus
 *
 *   kmx-test-system-prompter
 *
 * Stands in for GNOME Shell's org.gnome.keyring.SystemPrompter: a
 * GcrSystemPrompter whose prompts are gcr's GcrMockPrompt, answered as the
 * test scripts them on stdin, one command a line:
 *   own              take the name org.gnome.keyring.SystemPrompter
 *                    (prints "ready")
 *   release          give it up (prints "released")
 *   answer PASSWORD  the next prompt is answered with PASSWORD
 *   remember PASSWORD  the same, with "remember" ticked
 *   cancel           the next prompt is cancelled by the user
 *   delay MS         answers come after MS milliseconds
 * Prints "opened" when a prompt opens, "NAME=VALUE" for each of its text
 * fields the caller sets (title, message, description, warning,
 * choice-label, choice-chosen, continue-label), "closed" when it is closed,
 * and "done" after each command.
 */
#include "config.h"

#define GCR_API_SUBJECT_TO_CHANGE
#include <gcr/gcr-base.h>
#include <stdio.h>
#include <string.h>

#define SYSTEM_PROMPTER_NAME "org.gnome.keyring.SystemPrompter"

static GcrSystemPrompter *prompter;
static GDBusConnection *bus;
static guint owner_id;

static void
print_property(GObject *prompt, GParamSpec *pspec, gpointer unused)
{
	GValue value = G_VALUE_INIT;
	g_autofree char *text = NULL;

	g_value_init(&value, pspec->value_type);
	g_object_get_property(prompt, pspec->name, &value);
	if (G_VALUE_HOLDS_STRING(&value))
		text = g_strdup(g_value_get_string(&value));
	else
		text = g_strdup_value_contents(&value);
	printf("%s=%s\n", pspec->name, text != NULL ? text : "");
	fflush(stdout);
	g_value_unset(&value);
}

static void
prompt_closed(GcrPrompt *prompt, gpointer unused)
{
	printf("closed\n");
	fflush(stdout);
}

static GcrPrompt *
new_prompt(GcrSystemPrompter *p, gpointer unused)
{
	GcrPrompt *prompt = g_object_new(g_type_from_name("GcrMockPrompt"), NULL);
	const char *shown[] = {"title",
			       "message",
			       "description",
			       "warning",
			       "choice-label",
			       "choice-chosen",
			       "continue-label"};

	for (guint i = 0; i < G_N_ELEMENTS(shown); i++) {
		g_autofree char *signal = g_strdup_printf("notify::%s", shown[i]);
		g_signal_connect(prompt, signal, G_CALLBACK(print_property), NULL);
	}
	g_signal_connect(prompt, "prompt-close", G_CALLBACK(prompt_closed), NULL);
	printf("opened\n");
	fflush(stdout);
	return prompt;
}

static void
name_acquired(GDBusConnection *connection, const char *name, gpointer unused)
{
	printf("ready\n");
	fflush(stdout);
}

static void
name_lost(GDBusConnection *connection, const char *name, gpointer unused)
{
	printf("lost %s\n", name);
	fflush(stdout);
}

static gboolean
command(GIOChannel *channel, GIOCondition condition, gpointer loop)
{
	g_autofree char *line = NULL;
	gsize len = 0;

	if (g_io_channel_read_line(channel, &line, &len, NULL, NULL) != G_IO_STATUS_NORMAL) {
		g_main_loop_quit(loop);
		return G_SOURCE_REMOVE;
	}
	g_strchomp(line);
	if (g_str_equal(line, "own")) {
		gcr_system_prompter_register(prompter, bus);
		owner_id = g_bus_own_name_on_connection(bus,
							SYSTEM_PROMPTER_NAME,
							G_BUS_NAME_OWNER_FLAGS_NONE,
							name_acquired,
							name_lost,
							NULL,
							NULL);
		return G_SOURCE_CONTINUE;
	} else if (g_str_equal(line, "release")) {
		g_bus_unown_name(owner_id);
		owner_id = 0;
		gcr_system_prompter_unregister(prompter, FALSE);
		printf("released\n");
	} else if (g_str_has_prefix(line, "answer ")) {
		gcr_mock_prompter_expect_password_ok(line + strlen("answer "), NULL);
	} else if (g_str_has_prefix(line, "remember ")) {
		gcr_mock_prompter_expect_password_ok(line + strlen("remember "),
						     "choice-chosen",
						     TRUE,
						     NULL);
	} else if (g_str_equal(line, "cancel")) {
		gcr_mock_prompter_expect_password_cancel();
	} else if (g_str_has_prefix(line, "delay ")) {
		gcr_mock_prompter_set_delay_msec((guint)g_ascii_strtoull(line + 6, NULL, 10));
	} else {
		printf("unknown command: %s\n", line);
	}
	printf("done\n");
	fflush(stdout);
	return G_SOURCE_CONTINUE;
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
	g_autoptr(GIOChannel) in = g_io_channel_unix_new(0);
	GcrPrompt *first;
	const char *mock;

	bus = g_bus_get_sync(G_BUS_TYPE_SESSION, NULL, &error);
	if (bus == NULL) {
		g_printerr("%s\n", error->message);
		return 1;
	}
	/* gcr's mock prompter, on a connection of its own; one prompt opened
	 * on it registers the GcrMockPrompt type this program's prompter then
	 * makes its prompts of */
	mock = gcr_mock_prompter_start();
	first = gcr_system_prompt_open_for_prompter(mock, 10, NULL, &error);
	if (first == NULL) {
		g_printerr("cannot open a prompt on gcr's mock prompter: %s\n", error->message);
		return 1;
	}
	gcr_system_prompt_close(GCR_SYSTEM_PROMPT(first), NULL, NULL);
	g_object_unref(first);
	if (g_type_from_name("GcrMockPrompt") == 0) {
		g_printerr("gcr's mock prompt type is not registered\n");
		return 1;
	}
	prompter = gcr_system_prompter_new(GCR_SYSTEM_PROMPTER_SINGLE, 0);
	g_signal_connect(prompter, "new-prompt", G_CALLBACK(new_prompt), NULL);
	g_io_add_watch(in, G_IO_IN | G_IO_HUP, command, loop);
	g_main_loop_run(loop);
	if (owner_id != 0)
		g_bus_unown_name(owner_id);
	gcr_system_prompter_unregister(prompter, TRUE);
	g_object_unref(prompter);
	gcr_mock_prompter_stop();
	return 0;
}
