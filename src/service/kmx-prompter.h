/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: someone who can ask a person for a secret */
#pragma once

#include <gio/gio.h>

#include "kmx-device.h"
#include "kmx-secret.h"

G_BEGIN_DECLS

/**
 * KmxPromptKind:
 * @KMX_PROMPT_USER: the user secret (password, PIN)
 * @KMX_PROMPT_ADMIN: the admin secret (a card's admin PIN)
 */
typedef enum {
	KMX_PROMPT_USER,
	KMX_PROMPT_ADMIN,
} KmxPromptKind;

/**
 * KmxPromptInfo:
 * @device: the device whose secret is asked for
 * @kind: which secret
 * @retries: tries left, -1 if unknown
 * @caller: who wants it (an executable or app id)
 * @operation: what for ("sign", "unlock", …)
 * @key_id: (nullable): the key to be used
 * @message: the question, for a person
 * @description: who asks, for what, and how many tries are left, for a
 *   person
 */
typedef struct {
	KmxDevice *device;
	KmxPromptKind kind;
	int retries;
	char *caller;
	char *operation;
	char *key_id;
	char *message;
	char *description;
} KmxPromptInfo;

#define KMX_TYPE_PROMPTER (kmx_prompter_get_type())
G_DECLARE_DERIVABLE_TYPE(KmxPrompter, kmx_prompter, KMX, PROMPTER, GObject)

/**
 * KmxPrompterClass:
 * @ask_async: ask; cancelling @cancellable withdraws the question
 * @ask_finish: the secret, or %NULL: %KMX_ERROR_CANCELLED when the person
 *   declined, or an error for which kmx_prompter_is_gone() says the
 *   prompter went away (the next one is asked then); @remember says
 *   whether the person asked for it to be kept in the login keyring
 * @owner: who registered it (a bus name), to drop it when it leaves
 */
struct _KmxPrompterClass {
	GObjectClass parent_class;
	void (*ask_async)(KmxPrompter *self,
			  const KmxPromptInfo *info,
			  GCancellable *cancellable,
			  GAsyncReadyCallback callback,
			  gpointer user_data);
	KmxSecret *(*ask_finish)(KmxPrompter *self,
				 GAsyncResult *result,
				 gboolean *remember,
				 GError **error);
	gboolean (*is_gone)(KmxPrompter *self, const GError *error);
	gpointer padding[8];
};

void kmx_prompter_ask_async(KmxPrompter *self,
			    const KmxPromptInfo *info,
			    GCancellable *cancellable,
			    GAsyncReadyCallback callback,
			    gpointer user_data);
KmxSecret *kmx_prompter_ask_finish(KmxPrompter *self,
				   GAsyncResult *result,
				   gboolean *remember,
				   GError **error);
gboolean kmx_prompter_is_gone(KmxPrompter *self, const GError *error);

G_END_DECLS
