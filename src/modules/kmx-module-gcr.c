/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux-gcr: the module that links gcr, for the desktop's system
 * prompter (src/service/kmx-gcr-prompter.c is its only user)
 *
 * Thin wrappers: the prompter's logic stays in the daemon, which sees a
 * GcrPrompt only as a GObject; each wrapper checks the type it is given.
 */
#include "config.h"

#include <gmodule.h>
#define GCR_API_SUBJECT_TO_CHANGE
#include <gcr/gcr-base.h>

#include "kmx-module.h"

static void
kmx_module_gcr_open_async(const char *bus_name,
			  int timeout_seconds,
			  GCancellable *cancellable,
			  GAsyncReadyCallback callback,
			  gpointer user_data)
{
	gcr_system_prompt_open_for_prompter_async(bus_name,
						  timeout_seconds,
						  cancellable,
						  callback,
						  user_data);
}

static GObject *
kmx_module_gcr_open_finish(GAsyncResult *result, GError **error)
{
	GcrPrompt *prompt = gcr_system_prompt_open_finish(result, error);

	return prompt != NULL ? G_OBJECT(prompt) : NULL;
}

static void
kmx_module_gcr_set_texts(GObject *object,
			 const char *title,
			 const char *message,
			 const char *description,
			 const char *warning,
			 const char *continue_label,
			 const char *choice)
{
	GcrPrompt *prompt = GCR_PROMPT(object);

	gcr_prompt_set_title(prompt, title);
	gcr_prompt_set_message(prompt, message);
	gcr_prompt_set_description(prompt, description);
	if (warning != NULL)
		gcr_prompt_set_warning(prompt, warning);
	gcr_prompt_set_continue_label(prompt, continue_label);
	if (choice != NULL)
		gcr_prompt_set_choice_label(prompt, choice);
}

static void
kmx_module_gcr_password_async(GObject *prompt,
			      GCancellable *cancellable,
			      GAsyncReadyCallback callback,
			      gpointer user_data)
{
	gcr_prompt_password_async(GCR_PROMPT(prompt), cancellable, callback, user_data);
}

static const char *
kmx_module_gcr_password_finish(GObject *prompt, GAsyncResult *result, GError **error)
{
	return gcr_prompt_password_finish(GCR_PROMPT(prompt), result, error);
}

static gboolean
kmx_module_gcr_get_choice_chosen(GObject *prompt)
{
	return gcr_prompt_get_choice_chosen(GCR_PROMPT(prompt));
}

static void
kmx_module_gcr_close(GObject *prompt)
{
	gcr_system_prompt_close_async(GCR_SYSTEM_PROMPT(prompt), NULL, NULL, NULL);
}

static const KmxModuleGcr kmx_module_gcr = {
    .open_async = kmx_module_gcr_open_async,
    .open_finish = kmx_module_gcr_open_finish,
    .set_texts = kmx_module_gcr_set_texts,
    .password_async = kmx_module_gcr_password_async,
    .password_finish = kmx_module_gcr_password_finish,
    .get_choice_chosen = kmx_module_gcr_get_choice_chosen,
    .close = kmx_module_gcr_close,
};

KMX_MODULE_DEFINE_GET(kmx_module_gcr_get, kmx_module_gcr)
