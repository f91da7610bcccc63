/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: the a{sv} options of a method, parsed into typed values
 *
 * Every option a caller sends is checked here, once, before a request
 * starts: an unknown name, one the method does not take or a value of the
 * wrong type is InvalidArgument naming it.  Backends see only KmxOptions.
 */
#include "config.h"

#include <string.h>

#include "kmx-error.h"
#include "kmx-options.h"

typedef struct {
	const char *name;
	KmxOptionFlags flag;
	const GVariantType *type;
	const char *type_name;
} KmxOptionInfo;

static const KmxOptionInfo *
kmx_option_lookup(const char *name)
{
	static const KmxOptionInfo options[] = {
	    {"interactive", KMX_OPTION_INTERACTIVE, G_VARIANT_TYPE_BOOLEAN, "a boolean (b)"},
	    {"prehashed", KMX_OPTION_PREHASHED, G_VARIANT_TYPE_BOOLEAN, "a boolean (b)"},
	    {"exportable", KMX_OPTION_EXPORTABLE, G_VARIANT_TYPE_BOOLEAN, "a boolean (b)"},
	    {"admin-secret", KMX_OPTION_ADMIN_SECRET, G_VARIANT_TYPE_STRING, "a string (s)"},
	    {"slot", KMX_OPTION_SLOT, G_VARIANT_TYPE_STRING, "a string (s)"},
	    {"replace", KMX_OPTION_REPLACE, G_VARIANT_TYPE_BOOLEAN, "a boolean (b)"},
	};
	for (guint i = 0; i < G_N_ELEMENTS(options); i++) {
		if (strcmp(options[i].name, name) == 0)
			return &options[i];
	}
	return NULL;
}

void
kmx_options_init(KmxOptions *self)
{
	g_return_if_fail(self != NULL);
	memset(self, 0, sizeof(*self));
	self->interactive = TRUE;
}

/**
 * kmx_options_parse:
 * @self: options set up with kmx_options_init()
 * @dict: an a{sv} from a caller, or %NULL
 * @accepted: the options @method takes
 * @method: its name, for messages
 *
 * Returns: %FALSE with %KMX_ERROR_INVALID_ARGUMENT on a bad option
 */
gboolean
kmx_options_parse(KmxOptions *self,
		  GVariant *dict,
		  KmxOptionFlags accepted,
		  const char *method,
		  GError **error)
{
	GVariantIter iter;
	const char *name;
	GVariant *value;

	g_return_val_if_fail(self != NULL, FALSE);
	g_return_val_if_fail(method != NULL, FALSE);
	if (dict == NULL)
		return TRUE;
	g_return_val_if_fail(g_variant_is_of_type(dict, G_VARIANT_TYPE_VARDICT), FALSE);

	g_variant_iter_init(&iter, dict);
	while (g_variant_iter_next(&iter, "{&sv}", &name, &value)) {
		g_autoptr(GVariant) v = value;
		const KmxOptionInfo *info = kmx_option_lookup(name);

		if (info == NULL || !(accepted & info->flag)) {
			g_autofree char *shown = g_strescape(name, NULL);
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "%s takes no option '%.64s'",
				    method,
				    shown);
			return FALSE;
		}
		if (!g_variant_is_of_type(v, info->type)) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "option '%s' of %s must be %s, not '%.16s'",
				    info->name,
				    method,
				    info->type_name,
				    g_variant_get_type_string(v));
			return FALSE;
		}
		if (self->given & info->flag) {
			g_set_error(error,
				    KMX_ERROR,
				    KMX_ERROR_INVALID_ARGUMENT,
				    "option '%s' is given twice",
				    info->name);
			return FALSE;
		}
		self->given |= info->flag;
		switch (info->flag) {
		case KMX_OPTION_INTERACTIVE:
			self->interactive = g_variant_get_boolean(v);
			break;
		case KMX_OPTION_PREHASHED:
			self->prehashed = g_variant_get_boolean(v);
			break;
		case KMX_OPTION_EXPORTABLE:
			self->exportable = g_variant_get_boolean(v);
			break;
		case KMX_OPTION_ADMIN_SECRET: {
			gsize len = 0;
			const char *s = g_variant_get_string(v, &len);
			self->admin_secret = kmx_secret_new_from_data(s, len);
			/* our copy is in secret memory: wipe the message's */
			kmx_secure_zero((char *)s, len);
			break;
		}
		case KMX_OPTION_SLOT:
			self->slot = g_variant_dup_string(v, NULL);
			break;
		case KMX_OPTION_REPLACE:
			self->replace = g_variant_get_boolean(v);
			break;
		case KMX_OPTION_NONE:
		default:
			g_assert_not_reached();
		}
	}
	return TRUE;
}

void
kmx_options_clear(KmxOptions *self)
{
	g_return_if_fail(self != NULL);
	g_clear_pointer(&self->admin_secret, kmx_secret_unref);
	g_clear_pointer(&self->slot, g_free);
	kmx_options_init(self);
}
