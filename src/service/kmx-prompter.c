/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: someone who can ask a person for a secret
 *
 * The manager's prompting policy (kmx-prompt.c) asks prompters through this
 * class; a frontend provides them (a registered D-Bus Prompter object, the
 * desktop's system prompter through gcr).
 */
#include "config.h"

#include "kmx-error.h"
#include "kmx-prompter.h"

G_DEFINE_ABSTRACT_TYPE(KmxPrompter, kmx_prompter, G_TYPE_OBJECT)

static void
kmx_prompter_class_init(KmxPrompterClass *klass)
{
}

static void
kmx_prompter_init(KmxPrompter *self)
{
}

void
kmx_prompter_ask_async(KmxPrompter *self,
		       const KmxPromptInfo *info,
		       GCancellable *cancellable,
		       GAsyncReadyCallback callback,
		       gpointer user_data)
{
	g_return_if_fail(KMX_IS_PROMPTER(self));
	g_return_if_fail(info != NULL);
	KMX_PROMPTER_GET_CLASS(self)->ask_async(self, info, cancellable, callback, user_data);
}

/**
 * kmx_prompter_ask_finish:
 * @remember: (out) (optional): whether the person ticked "remember"
 */
KmxSecret *
kmx_prompter_ask_finish(KmxPrompter *self, GAsyncResult *result, gboolean *remember, GError **error)
{
	gboolean remember_local = FALSE;
	KmxSecret *secret;

	g_return_val_if_fail(KMX_IS_PROMPTER(self), NULL);
	secret = KMX_PROMPTER_GET_CLASS(self)->ask_finish(self, result, &remember_local, error);
	if (remember != NULL)
		*remember = secret != NULL && remember_local;
	return secret;
}

/**
 * kmx_prompter_is_gone:
 *
 * Returns: whether @error from kmx_prompter_ask_finish() means the prompter
 * is no more (and the next one should be asked)
 */
gboolean
kmx_prompter_is_gone(KmxPrompter *self, const GError *error)
{
	KmxPrompterClass *klass;

	g_return_val_if_fail(KMX_IS_PROMPTER(self), TRUE);
	klass = KMX_PROMPTER_GET_CLASS(self);
	return klass->is_gone != NULL && klass->is_gone(self, error);
}
