/* keymux-settings: the settings panel of keymux (DESIGN.md §10)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One AdwPreferencesGroup per device (its state and the actions on it), one
 * AdwExpanderRow per key (its facts and the actions on it).  Everything is
 * kept current from libkeymux's signals: device-added/-removed,
 * key-added/-removed and notify:: on each object; nothing is polled.  While
 * one of its windows is focused the panel is keymuxd's prompter, so a
 * locked device that another program needs is unlocked here.
 */
#include "config.h"

#include <string.h>

#include "kmx-panel.h"
#include "kmx-secret.h"

#define KMX_PANEL_APP_ID "org.keymux.Settings"
/* an importable key file is a few KiB; anything much larger is not one */
#define KMX_PANEL_IMPORT_MAX (1024 * 1024)

typedef struct _Panel Panel;

typedef struct {
	Panel *panel;
	KeymuxDevice *device;
	AdwPreferencesGroup *group;
	AdwActionRow *state_row;
	GtkWidget *lock_button;
	GtkWidget *unlock_button;
	GtkWidget *generate_button;
	GtkWidget *import_button;
	GtkWidget *passwd_button;
	GtkWidget *register_button;
	GHashTable *keys; /* KeymuxKey* -> KeyView* */
} DeviceView;

typedef struct {
	DeviceView *dv;
	KeymuxKey *key;
	AdwExpanderRow *row;
	AdwActionRow *id_row;
	AdwActionRow *usage_row;
	GtkWidget *rename_button;
	GtkWidget *delete_button;
	GtkWidget *public_button;
	GtkWidget *copy_pem_button;
	GtkWidget *copy_ssh_button;
	GtkWidget *save_pem_button;
	GtkWidget *save_ssh_button;
} KeyView;

struct _Panel {
	AdwApplication *app;
	GtkWindow *window;
	AdwToastOverlay *toasts;
	GtkStack *stack;
	AdwPreferencesPage *page;
	AdwStatusPage *status;
	KeymuxClient *client;
	KeymuxPrompter *prompter;
	gboolean prompter_registered;
	guint prompter_idle;
	gboolean closing;    /* the window is going: views touch no widget */
	GHashTable *devices; /* device object path -> DeviceView* */
};

static void panel_update_prompter_later(Panel *p);

/* Views are reference counted: a dialog or a call in flight holds its view,
 * so an answer that comes after the device or key went (a card pulled while
 * its dialog is open) finds the object, not freed memory.  Removing a view
 * takes its widgets away at once. */
static void
device_view_clear(gpointer data)
{
	DeviceView *dv = data;

	g_object_unref(dv->device);
}

static DeviceView *
dv_ref(DeviceView *dv)
{
	return g_rc_box_acquire(dv);
}

static void
dv_unref(gpointer dv)
{
	g_rc_box_release_full(dv, device_view_clear);
}

static void
key_view_clear(gpointer data)
{
	KeyView *kv = data;

	g_object_unref(kv->key);
	dv_unref(kv->dv);
}

static KeyView *
kv_ref(KeyView *kv)
{
	return g_rc_box_acquire(kv);
}

static void
kv_unref(gpointer kv)
{
	g_rc_box_release_full(kv, key_view_clear);
}

static void
dv_unref_closure(gpointer dv, GClosure *closure)
{
	(void)closure;
	dv_unref(dv);
}

static void
kv_unref_closure(gpointer kv, GClosure *closure)
{
	(void)closure;
	kv_unref(kv);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(DeviceView, dv_unref)

/* ---- small helpers ------------------------------------------------------- */

static void
set_a11y_label(gpointer widget, const char *label)
{
	gtk_accessible_update_property(GTK_ACCESSIBLE(widget),
				       GTK_ACCESSIBLE_PROPERTY_LABEL,
				       label,
				       -1);
}

static void
toast(Panel *p, const char *text)
{
	adw_toast_overlay_add_toast(p->toasts, adw_toast_new(text));
}

/* a failure goes before the notices queued ahead of it: shown at once */
static void
toast_problem(Panel *p, const char *text)
{
	AdwToast *t = adw_toast_new(text);

	g_message("%s", text);
	adw_toast_set_priority(t, ADW_TOAST_PRIORITY_HIGH);
	adw_toast_overlay_add_toast(p->toasts, t);
}

static void
toast_error(Panel *p, const char *what, const GError *error)
{
	g_autofree char *text = g_strdup_printf("%s: %s", what, error->message);

	toast_problem(p, text);
}

/* copy the text of a password entry into locked memory and empty the entry */
static KmxSecret *
take_secret(GtkWidget *entry)
{
	KmxSecret *secret = kmx_secret_new_from_string(gtk_editable_get_text(GTK_EDITABLE(entry)));

	gtk_editable_set_text(GTK_EDITABLE(entry), "");
	return secret;
}

static char *
device_label(KeymuxDevice *device)
{
	g_autofree char *label = keymux_device_dup_label(device);

	if (label == NULL || *label == '\0')
		return g_strdup(keymux_device_get_id(device));
	return g_steal_pointer(&label);
}

static gboolean
device_is_protected(KeymuxDevice *device)
{
	g_autoptr(GVariant) details = keymux_device_dup_details(device);
	gboolean protected = TRUE;

	if (details != NULL)
		g_variant_lookup(details, "protected", "b", &protected);
	return protected;
}

/* a card is unlocked with a PIN, everything else with a password */
static const char *
secret_word(KeymuxDevice *device)
{
	return g_strcmp0(keymux_device_get_backend(device), "card") == 0 ? "PIN" : "password";
}

static GtkWidget *
button_new(const char *text, const char *icon, const char *a11y, const char *tooltip)
{
	GtkWidget *b = text != NULL ? gtk_button_new_with_label(text)
				    : gtk_button_new_from_icon_name(icon);

	gtk_widget_set_valign(b, GTK_ALIGN_CENTER);
	if (text == NULL)
		gtk_widget_add_css_class(b, "flat");
	if (tooltip != NULL)
		gtk_widget_set_tooltip_text(b, tooltip);
	set_a11y_label(b, a11y);
	return b;
}

/* a GtkEntry that hides its text: GTK 4.8's GtkPasswordEntry trips over
 * its own accessible object when it is destroyed under AT-SPI */
static GtkWidget *
password_entry_new(void)
{
	GtkWidget *entry = gtk_entry_new();

	gtk_entry_set_visibility(GTK_ENTRY(entry), FALSE);
	gtk_entry_set_input_purpose(GTK_ENTRY(entry), GTK_INPUT_PURPOSE_PASSWORD);
	gtk_entry_set_input_hints(GTK_ENTRY(entry),
				  GTK_INPUT_HINT_NO_SPELLCHECK | GTK_INPUT_HINT_PRIVATE);
	return entry;
}

static GtkWidget *
labelled_entry(GtkWidget *box, GtkWidget *entry, const char *label)
{
	GtkWidget *l = gtk_label_new(label);

	gtk_label_set_xalign(GTK_LABEL(l), 0);
	gtk_label_set_mnemonic_widget(GTK_LABEL(l), entry);
	gtk_box_append(GTK_BOX(box), l);
	gtk_box_append(GTK_BOX(box), entry);
	/* the mnemonic label names the entry: no accessible label of its own */
	if (GTK_IS_ENTRY(entry))
		gtk_entry_set_activates_default(GTK_ENTRY(entry), TRUE);
	return entry;
}

/* an AdwMessageDialog with Cancel and one action, an optional extra child */
static AdwMessageDialog *
dialog_new(Panel *p,
	   const char *heading,
	   const char *body,
	   const char *action,
	   const char *action_label,
	   AdwResponseAppearance appearance,
	   GtkWidget *extra)
{
	AdwMessageDialog *d = ADW_MESSAGE_DIALOG(adw_message_dialog_new(p->window, heading, body));

	adw_message_dialog_add_response(d, "cancel", "Cancel");
	adw_message_dialog_add_response(d, action, action_label);
	adw_message_dialog_set_response_appearance(d, action, appearance);
	adw_message_dialog_set_default_response(d, action);
	adw_message_dialog_set_close_response(d, "cancel");
	if (extra != NULL)
		adw_message_dialog_set_extra_child(d, extra);
	set_a11y_label(d, heading);
	g_signal_connect_swapped(d,
				 "notify::is-active",
				 G_CALLBACK(panel_update_prompter_later),
				 p);
	/* hand the focus back to the window, as a window manager does (with
	 * none, it would stay nowhere): the panel stays the prompter */
	g_signal_connect_object(d,
				"response",
				G_CALLBACK(gtk_window_present),
				p->window,
				G_CONNECT_SWAPPED);
	return d;
}

static GtkWidget *
vbox(void)
{
	return gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
}

/* ---- keys ---------------------------------------------------------------- */

static void
key_view_update(KeyView *kv)
{
	g_autofree char *label = keymux_key_dup_label(kv->key);
	g_auto(GStrv) usage = keymux_key_dup_usage(kv->key);
	g_autofree char *usage_text = usage != NULL ? g_strjoinv(", ", usage) : g_strdup("");
	const char *id = keymux_key_get_id(kv->key);
	const char *alg = keymux_key_get_algorithm(kv->key);
	g_autofree char *short_id = g_strndup(id != NULL ? id : "", 16);
	g_autofree char *subtitle = g_strdup_printf("%s · %s", alg != NULL ? alg : "?", short_id);
	g_autofree char *a11y = NULL;
	g_autofree char *text = NULL;

	if (label == NULL || *label == '\0') {
		g_free(label);
		label = g_strdup("(no label)");
	}
	adw_preferences_row_set_title(ADW_PREFERENCES_ROW(kv->row), label);
	adw_expander_row_set_subtitle(kv->row, subtitle);
	a11y = g_strdup_printf("Key %s", label);
	set_a11y_label(kv->row, a11y);
	gtk_accessible_update_property(GTK_ACCESSIBLE(kv->row),
				       GTK_ACCESSIBLE_PROPERTY_DESCRIPTION,
				       subtitle,
				       -1);
	/* a key on a card that is out cannot be deleted: say so before a click */
	gtk_widget_set_sensitive(kv->delete_button, keymux_key_get_available(kv->key));
	adw_action_row_set_subtitle(kv->id_row, id != NULL ? id : "");
	adw_action_row_set_subtitle(kv->usage_row, usage_text);
#define A11Y(w, fmt)                                                                               \
	do {                                                                                       \
		g_free(text);                                                                      \
		text = g_strdup_printf(fmt, label);                                                \
		set_a11y_label(kv->w, text);                                                       \
	} while (0)
	A11Y(rename_button, "Rename key %s");
	A11Y(delete_button, "Delete key %s");
	A11Y(public_button, "Public key of %s");
	A11Y(copy_pem_button, "Copy the public key of %s as PEM");
	A11Y(copy_ssh_button, "Copy the public key of %s as an authorized_keys line");
	A11Y(save_pem_button, "Save the public key of %s as PEM");
	A11Y(save_ssh_button, "Save the public key of %s as an authorized_keys line");
#undef A11Y
	g_free(text);
	text = g_strdup_printf("Key ID of %s: %s", label, id != NULL ? id : "");
	set_a11y_label(kv->id_row, text);
	g_free(text);
	text = g_strdup_printf("Usage of %s: %s", label, usage_text);
	set_a11y_label(kv->usage_row, text);
}

/* rename */

static void
rename_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	Panel *p = user_data;
	g_autoptr(GError) error = NULL;

	if (!keymux_key_set_label_finish(KEYMUX_KEY(source), res, &error))
		toast_error(p, "Cannot rename the key", error);
}

static void
rename_response(AdwMessageDialog *d, const char *response, KeyView *kv)
{
	GtkWidget *entry = g_object_get_data(G_OBJECT(d), "entry");

	if (g_strcmp0(response, "rename") != 0)
		return;
	keymux_key_set_label(kv->key,
			     gtk_editable_get_text(GTK_EDITABLE(entry)),
			     NULL,
			     rename_done,
			     kv->dv->panel);
}

static void
on_rename(KeyView *kv)
{
	g_autofree char *label = keymux_key_dup_label(kv->key);
	g_autofree char *heading = g_strdup_printf("Rename “%s”", label != NULL ? label : "");
	GtkWidget *box = vbox();
	GtkWidget *entry = labelled_entry(box, gtk_entry_new(), "New label");
	AdwMessageDialog *d;

	gtk_editable_set_text(GTK_EDITABLE(entry), label != NULL ? label : "");
	d = dialog_new(kv->dv->panel,
		       heading,
		       NULL,
		       "rename",
		       "Rename",
		       ADW_RESPONSE_SUGGESTED,
		       box);
	g_object_set_data(G_OBJECT(d), "entry", entry);
	g_signal_connect_data(d,
			      "response",
			      G_CALLBACK(rename_response),
			      kv_ref(kv),
			      kv_unref_closure,
			      0);
	gtk_window_present(GTK_WINDOW(d));
	gtk_widget_grab_focus(entry);
}

/* delete */

static void
delete_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	Panel *p = user_data;
	g_autoptr(GError) error = NULL;

	if (!keymux_key_delete_finish(KEYMUX_KEY(source), res, &error))
		toast_error(p, "Cannot delete the key", error);
	else
		toast(p, "Key deleted");
}

static void
delete_response(AdwMessageDialog *d, const char *response, gpointer user_data)
{
	KeymuxKey *key = g_object_get_data(G_OBJECT(d), "key");

	if (g_strcmp0(response, "delete") == 0)
		keymux_key_delete(key, NULL, delete_done, user_data);
}

static void
on_delete(KeyView *kv)
{
	g_autofree char *label = keymux_key_dup_label(kv->key);
	g_autofree char *heading = g_strdup_printf("Delete “%s”?", label != NULL ? label : "");
	AdwMessageDialog *d =
	    dialog_new(kv->dv->panel,
		       heading,
		       "The key is destroyed. What it signed cannot be signed again, "
		       "and what was encrypted to it cannot be decrypted.",
		       "delete",
		       "Delete",
		       ADW_RESPONSE_DESTRUCTIVE,
		       NULL);

	/* the dialog keeps the key: the view may go before the answer */
	g_object_set_data_full(G_OBJECT(d), "key", g_object_ref(kv->key), g_object_unref);
	adw_message_dialog_set_default_response(d, "cancel");
	g_signal_connect(d, "response", G_CALLBACK(delete_response), kv->dv->panel);
	gtk_window_present(GTK_WINDOW(d));
}

/* public key */

static void
copy_public(KeyView *kv, gboolean ssh)
{
	Panel *p = kv->dv->panel;
	g_autoptr(GError) error = NULL;
	g_autofree char *text = ssh ? kmx_panel_public_key_ssh(kv->key, &error)
				    : kmx_panel_public_key_pem(kv->key, &error);

	if (text == NULL) {
		toast_error(p, "Cannot copy the public key", error);
		return;
	}
	gdk_clipboard_set_text(gtk_widget_get_clipboard(GTK_WIDGET(p->window)), text);
	toast(p, ssh ? "authorized_keys line copied" : "Public key copied as PEM");
}

static void
on_copy_pem(KeyView *kv)
{
	copy_public(kv, FALSE);
}

static void
on_copy_ssh(KeyView *kv)
{
	copy_public(kv, TRUE);
}

static void
save_written(GObject *source, GAsyncResult *res, gpointer user_data)
{
	Panel *p = user_data;
	g_autoptr(GError) error = NULL;

	if (!g_file_replace_contents_finish(G_FILE(source), res, NULL, &error))
		toast_error(p, "Cannot save the public key", error);
	else
		toast(p, "Public key saved");
}

/* the format is the one the user picked in the menu, whatever the name */
static void
save_response(GtkNativeDialog *chooser, int response, gpointer user_data)
{
	Panel *p = user_data;
	KeymuxKey *key = g_object_get_data(G_OBJECT(chooser), "key");
	gboolean ssh = g_object_get_data(G_OBJECT(chooser), "ssh") != NULL;
	g_autoptr(GFile) file = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *text = NULL;
	GBytes *bytes;

	if (response != GTK_RESPONSE_ACCEPT)
		goto out;
	file = gtk_file_chooser_get_file(GTK_FILE_CHOOSER(chooser));
	if (file == NULL)
		goto out;
	text = ssh ? kmx_panel_public_key_ssh(key, &error) : kmx_panel_public_key_pem(key, &error);
	if (text == NULL) {
		toast_error(p, "Cannot save the public key", error);
		goto out;
	}
	/* an authorized_keys file is lines; the PEM armor ends with its own */
	if (ssh) {
		char *line = g_strconcat(text, "\n", NULL);

		g_free(text);
		text = line;
	}
	bytes = g_bytes_new_take(text, strlen(text));
	text = NULL;
	g_file_replace_contents_bytes_async(file,
					    bytes,
					    NULL,
					    FALSE,
					    G_FILE_CREATE_REPLACE_DESTINATION,
					    NULL,
					    save_written,
					    p);
	g_bytes_unref(bytes);
out:
	g_object_unref(chooser);
}

static void
save_public(KeyView *kv, gboolean ssh)
{
	GtkFileChooserNative *chooser = gtk_file_chooser_native_new(
	    ssh ? "Save the Public Key as an authorized_keys Line" : "Save the Public Key as PEM",
	    kv->dv->panel->window,
	    GTK_FILE_CHOOSER_ACTION_SAVE,
	    "Save",
	    "Cancel");
	g_autofree char *label = keymux_key_dup_label(kv->key);
	g_autofree char *name = g_strdup_printf("%s.%s",
						label != NULL && *label != '\0' ? label : "key",
						ssh ? "pub" : "pem");

	g_strdelimit(name, "/", '_');
	gtk_file_chooser_set_current_name(GTK_FILE_CHOOSER(chooser), name);
	g_object_set_data_full(G_OBJECT(chooser), "key", g_object_ref(kv->key), g_object_unref);
	g_object_set_data(G_OBJECT(chooser), "ssh", ssh ? kv : NULL);
	g_signal_connect(chooser, "response", G_CALLBACK(save_response), kv->dv->panel);
	gtk_native_dialog_show(GTK_NATIVE_DIALOG(chooser));
}

static void
on_save_pem(KeyView *kv)
{
	save_public(kv, FALSE);
}

static void
on_save_ssh(KeyView *kv)
{
	save_public(kv, TRUE);
}

static KeyView *
key_view_new(DeviceView *dv, KeymuxKey *key)
{
	KeyView *kv = g_rc_box_new0(KeyView);
	GtkWidget *popover = gtk_popover_new();
	GtkWidget *popover_box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 0);

	kv->dv = dv_ref(dv);
	kv->key = g_object_ref(key);
	kv->row = ADW_EXPANDER_ROW(adw_expander_row_new());
	kv->id_row = ADW_ACTION_ROW(adw_action_row_new());
	adw_preferences_row_set_title(ADW_PREFERENCES_ROW(kv->id_row), "Key ID");
	kv->usage_row = ADW_ACTION_ROW(adw_action_row_new());
	adw_preferences_row_set_title(ADW_PREFERENCES_ROW(kv->usage_row), "Usage");
	adw_expander_row_add_row(kv->row, GTK_WIDGET(kv->id_row));
	adw_expander_row_add_row(kv->row, GTK_WIDGET(kv->usage_row));

	/* the public key's actions in a popover from the row's header, where
	 * they are at hand without expanding the row */
	kv->copy_pem_button = button_new("Copy as PEM", NULL, "", NULL);
	kv->copy_ssh_button = button_new("Copy as authorized_keys Line", NULL, "", NULL);
	kv->save_pem_button = button_new("Save as PEM…", NULL, "", NULL);
	kv->save_ssh_button = button_new("Save as authorized_keys…", NULL, "", NULL);
	gtk_box_append(GTK_BOX(popover_box), kv->copy_pem_button);
	gtk_box_append(GTK_BOX(popover_box), kv->copy_ssh_button);
	gtk_box_append(GTK_BOX(popover_box), kv->save_pem_button);
	gtk_box_append(GTK_BOX(popover_box), kv->save_ssh_button);
	for (GtkWidget *b = gtk_widget_get_first_child(popover_box); b != NULL;
	     b = gtk_widget_get_next_sibling(b)) {
		gtk_widget_add_css_class(b, "flat");
		gtk_widget_set_halign(gtk_button_get_child(GTK_BUTTON(b)), GTK_ALIGN_START);
		g_signal_connect_swapped(b, "clicked", G_CALLBACK(gtk_popover_popdown), popover);
	}
	gtk_popover_set_child(GTK_POPOVER(popover), popover_box);
	kv->public_button = gtk_menu_button_new();
	gtk_menu_button_set_icon_name(GTK_MENU_BUTTON(kv->public_button), "send-to-symbolic");
	gtk_menu_button_set_popover(GTK_MENU_BUTTON(kv->public_button), popover);
	gtk_widget_set_valign(kv->public_button, GTK_ALIGN_CENTER);
	gtk_widget_add_css_class(kv->public_button, "flat");
	gtk_widget_set_tooltip_text(kv->public_button, "Public key");

	kv->rename_button = button_new(NULL, "document-edit-symbolic", "", "Rename");
	kv->delete_button = button_new(NULL, "user-trash-symbolic", "", "Delete");
	adw_expander_row_add_action(kv->row, kv->public_button);
	adw_expander_row_add_action(kv->row, kv->rename_button);
	adw_expander_row_add_action(kv->row, kv->delete_button);

	g_signal_connect_swapped(kv->rename_button, "clicked", G_CALLBACK(on_rename), kv);
	g_signal_connect_swapped(kv->delete_button, "clicked", G_CALLBACK(on_delete), kv);
	g_signal_connect_swapped(kv->copy_pem_button, "clicked", G_CALLBACK(on_copy_pem), kv);
	g_signal_connect_swapped(kv->copy_ssh_button, "clicked", G_CALLBACK(on_copy_ssh), kv);
	g_signal_connect_swapped(kv->save_pem_button, "clicked", G_CALLBACK(on_save_pem), kv);
	g_signal_connect_swapped(kv->save_ssh_button, "clicked", G_CALLBACK(on_save_ssh), kv);
	g_signal_connect_swapped(key, "notify", G_CALLBACK(key_view_update), kv);
	key_view_update(kv);
	adw_preferences_group_add(dv->group, GTK_WIDGET(kv->row));
	return kv;
}

static void
key_view_free(gpointer data)
{
	KeyView *kv = data;

	g_signal_handlers_disconnect_by_data(kv->key, kv);
	if (!kv->dv->panel->closing)
		adw_preferences_group_remove(kv->dv->group, GTK_WIDGET(kv->row));
	kv_unref(kv);
}

/* ---- devices ------------------------------------------------------------- */

static void
device_view_update(DeviceView *dv)
{
	KeymuxDevice *device = dv->device;
	g_autofree char *label = device_label(device);
	gboolean locked = keymux_device_get_locked(device);
	gboolean protected = device_is_protected(device);
	gboolean registered = keymux_device_get_registered(device);
	gboolean available = keymux_device_get_available(device);
	gboolean softkey = g_strcmp0(keymux_device_get_backend(device), "softkey") == 0;
	int retries = keymux_device_get_pin_retries(device);
	GString *state = g_string_new(NULL);
	g_autofree char *a11y = NULL;
	g_autofree char *text = NULL;

	if (!protected)
		g_string_append(state, "Unprotected: no password");
	else
		g_string_append(state, locked ? "Locked" : "Unlocked");
	if (registered)
		g_string_append(state, " · Registered");
	g_string_append(state, available ? " · Available" : " · Not available");
	if (retries >= 0)
		g_string_append_printf(state,
				       " · %d %s left",
				       retries,
				       retries == 1 ? "try" : "tries");

	adw_preferences_group_set_title(dv->group, label);
	adw_preferences_group_set_description(dv->group, keymux_device_get_id(device));
	adw_action_row_set_subtitle(dv->state_row, state->str);
	a11y = g_strdup_printf("State of %s: %s", label, state->str);
	set_a11y_label(dv->state_row, a11y);

	gtk_widget_set_visible(dv->lock_button, protected && !locked);
	gtk_widget_set_visible(dv->unlock_button, protected && locked);
	gtk_widget_set_sensitive(dv->unlock_button, available && retries != 0);
	gtk_widget_set_sensitive(dv->generate_button, available);
	gtk_widget_set_sensitive(dv->import_button, available);
	gtk_widget_set_sensitive(dv->passwd_button, available && retries != 0);
	if (!protected)
		gtk_button_set_label(GTK_BUTTON(dv->passwd_button), "Set Password…");
	else if (g_strcmp0(secret_word(device), "PIN") == 0)
		gtk_button_set_label(GTK_BUTTON(dv->passwd_button), "Change PIN…");
	else
		gtk_button_set_label(GTK_BUTTON(dv->passwd_button), "Change Password…");
	gtk_widget_set_visible(dv->register_button, !softkey);
	gtk_button_set_label(GTK_BUTTON(dv->register_button), registered ? "Forget" : "Register");
#define A11Y(w, fmt)                                                                               \
	do {                                                                                       \
		g_free(text);                                                                      \
		text = g_strdup_printf(fmt, label);                                                \
		set_a11y_label(dv->w, text);                                                       \
	} while (0)
	A11Y(lock_button, "Lock %s");
	A11Y(unlock_button, "Unlock %s");
	A11Y(generate_button, "Generate a key on %s");
	A11Y(import_button, "Import a key into %s");
	if (protected) {
		g_free(text);
		text = g_strdup_printf("Change the %s of %s", secret_word(device), label);
		set_a11y_label(dv->passwd_button, text);
	} else
		A11Y(passwd_button, "Set a password on %s");
	if (registered)
		A11Y(register_button, "Forget %s");
	else
		A11Y(register_button, "Register %s");
#undef A11Y
	g_string_free(state, TRUE);
}

/* lock */

static void
lock_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GError) error = NULL;

	if (!keymux_device_lock_finish(KEYMUX_DEVICE(source), res, &error))
		toast_error(user_data, "Cannot lock", error);
}

static void
on_lock(DeviceView *dv)
{
	keymux_device_lock(dv->device, NULL, lock_done, dv->panel);
}

/* unlock, with the panel's own password dialog */

static void on_unlock_with(DeviceView *dv, const char *problem);

static void
unlock_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(DeviceView) dv = user_data;
	g_autoptr(GError) error = NULL;

	if (keymux_device_unlock_finish(KEYMUX_DEVICE(source), res, &error))
		return;
	if (g_error_matches(error, KEYMUX_ERROR, KEYMUX_ERROR_BAD_SECRET)) {
		g_autofree char *problem = g_strdup_printf("That %s was wrong (%s). Try again.",
							   secret_word(dv->device),
							   error->message);

		on_unlock_with(dv, problem);
	} else
		toast_error(dv->panel, "Cannot unlock", error);
}

static void
unlock_response(AdwMessageDialog *d, const char *response, DeviceView *dv)
{
	GtkWidget *entry = g_object_get_data(G_OBJECT(d), "entry");
	g_autoptr(KmxSecret) secret = take_secret(entry);

	if (g_strcmp0(response, "unlock") != 0)
		return;
	/* libkeymux copies the secret into its message at once */
	keymux_device_unlock(dv->device,
			     kmx_secret_get_string(secret),
			     KEYMUX_CALL_FLAGS_NO_INTERACTION,
			     NULL,
			     unlock_done,
			     dv_ref(dv));
}

static void
on_unlock_with(DeviceView *dv, const char *problem)
{
	g_autofree char *label = device_label(dv->device);
	g_autofree char *heading = g_strdup_printf("Unlock %s", label);
	GtkWidget *box = vbox();
	g_autofree char *word = g_strdup(secret_word(dv->device));
	GtkWidget *entry;
	AdwMessageDialog *d;

	word[0] = g_ascii_toupper(word[0]);
	entry = labelled_entry(box, password_entry_new(), word);
	d = dialog_new(dv->panel,
		       heading,
		       problem,
		       "unlock",
		       "Unlock",
		       ADW_RESPONSE_SUGGESTED,
		       box);
	g_object_set_data(G_OBJECT(d), "entry", entry);
	g_signal_connect_data(d,
			      "response",
			      G_CALLBACK(unlock_response),
			      dv_ref(dv),
			      dv_unref_closure,
			      0);
	gtk_window_present(GTK_WINDOW(d));
	gtk_widget_grab_focus(entry);
}

static void
on_unlock(DeviceView *dv)
{
	g_autofree char *text =
	    g_strdup_printf("Enter the %s of the device.", secret_word(dv->device));

	on_unlock_with(dv, text);
}

/* change or set the password */

static void
passwd_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(DeviceView) dv = user_data;
	g_autoptr(GError) error = NULL;

	if (!keymux_device_change_secret_finish(KEYMUX_DEVICE(source), res, &error))
		toast_error(dv->panel, "Cannot change the password", error);
	else
		toast(dv->panel,
		      g_strcmp0(secret_word(dv->device), "PIN") == 0 ? "PIN changed"
								     : "Password changed");
}

static void
passwd_response(AdwMessageDialog *d, const char *response, DeviceView *dv)
{
	GtkWidget *old_entry = g_object_get_data(G_OBJECT(d), "old");
	g_autoptr(KmxSecret) old = old_entry != NULL ? take_secret(old_entry)
						     : kmx_secret_new_from_string("");
	g_autoptr(KmxSecret) new1 = take_secret(g_object_get_data(G_OBJECT(d), "new"));
	g_autoptr(KmxSecret) new2 = take_secret(g_object_get_data(G_OBJECT(d), "repeat"));

	if (g_strcmp0(response, "change") != 0)
		return;
	if (!kmx_secret_equal(new1, new2)) {
		g_autofree char *text = g_strdup_printf("The new %ss differ: nothing was changed",
							secret_word(dv->device));

		toast_problem(dv->panel, text);
		return;
	}
	if (kmx_secret_is_empty(new1)) {
		g_autofree char *text = g_strdup_printf("The new %s is empty: nothing was changed",
							secret_word(dv->device));

		toast_problem(dv->panel, text);
		return;
	}
	keymux_device_change_secret(dv->device,
				    kmx_secret_get_string(old),
				    kmx_secret_get_string(new1),
				    NULL,
				    passwd_done,
				    dv_ref(dv));
}

static void
on_passwd(DeviceView *dv)
{
	g_autofree char *label = device_label(dv->device);
	gboolean protected = device_is_protected(dv->device);
	gboolean pin = g_strcmp0(secret_word(dv->device), "PIN") == 0;
	g_autofree char *heading =
	    protected ? g_strdup_printf("Change the %s of %s", pin ? "PIN" : "Password", label)
		      : g_strdup_printf("Set a Password on %s", label);
	const char *word = pin ? "PIN" : "password";
	g_autofree char *current = g_strdup_printf("Current %s", word);
	g_autofree char *new_one = g_strdup_printf("New %s", word);
	g_autofree char *repeat = g_strdup_printf("Repeat the new %s", word);
	GtkWidget *box = vbox();
	AdwMessageDialog *d;

	d = dialog_new(dv->panel,
		       heading,
		       NULL,
		       "change",
		       protected ? "Change" : "Set",
		       ADW_RESPONSE_SUGGESTED,
		       box);
	if (protected)
		g_object_set_data(G_OBJECT(d),
				  "old",
				  labelled_entry(box, password_entry_new(), current));
	g_object_set_data(G_OBJECT(d), "new", labelled_entry(box, password_entry_new(), new_one));
	g_object_set_data(G_OBJECT(d), "repeat", labelled_entry(box, password_entry_new(), repeat));
	g_signal_connect_data(d,
			      "response",
			      G_CALLBACK(passwd_response),
			      dv_ref(dv),
			      dv_unref_closure,
			      0);
	gtk_window_present(GTK_WINDOW(d));
}

/* generate */

static const char *const algorithms[] = {
    "ed25519",
    "ecdsa-p256",
    "ecdsa-p384",
    "rsa2048",
    "rsa3072",
    "rsa4096",
    "x25519",
    NULL,
};

static void
generate_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(DeviceView) dv = user_data;
	g_autoptr(GError) error = NULL;
	g_autoptr(KeymuxKey)
	    key = keymux_device_generate_key_finish(KEYMUX_DEVICE(source), res, &error);

	if (key == NULL)
		toast_error(dv->panel, "Cannot generate the key", error);
	else
		toast(dv->panel, "Key generated");
}

static void
generate_response(AdwMessageDialog *d, const char *response, DeviceView *dv)
{
	GtkWidget *entry = g_object_get_data(G_OBJECT(d), "label");
	GtkDropDown *algorithm = g_object_get_data(G_OBJECT(d), "algorithm");
	guint i = gtk_drop_down_get_selected(algorithm);

	if (g_strcmp0(response, "generate") != 0 || i >= G_N_ELEMENTS(algorithms) - 1)
		return;
	keymux_device_generate_key(dv->device,
				   algorithms[i],
				   gtk_editable_get_text(GTK_EDITABLE(entry)),
				   KEYMUX_CALL_FLAGS_NONE,
				   NULL,
				   generate_done,
				   dv_ref(dv));
}

static void
on_generate(DeviceView *dv)
{
	g_autofree char *label = device_label(dv->device);
	g_autofree char *heading = g_strdup_printf("Generate a Key on %s", label);
	GtkWidget *box = vbox();
	GtkWidget *algorithm =
	    labelled_entry(box,
			   gtk_drop_down_new_from_strings((const char *const *)algorithms),
			   "Algorithm");
	GtkWidget *entry = labelled_entry(box, gtk_entry_new(), "Label");
	AdwMessageDialog *d;

	d = dialog_new(dv->panel,
		       heading,
		       NULL,
		       "generate",
		       "Generate",
		       ADW_RESPONSE_SUGGESTED,
		       box);
	g_object_set_data(G_OBJECT(d), "label", entry);
	g_object_set_data(G_OBJECT(d), "algorithm", algorithm);
	g_signal_connect_data(d,
			      "response",
			      G_CALLBACK(generate_response),
			      dv_ref(dv),
			      dv_unref_closure,
			      0);
	gtk_window_present(GTK_WINDOW(d));
	gtk_widget_grab_focus(entry);
}

/* import: a file, then its label and passphrase; a wrong passphrase asks
 * again with the same bytes, the file is read once */

typedef struct {
	DeviceView *dv;
	KmxSecret *data; /* the file's bytes, in locked memory */
	char *name;	 /* the file's name, for the dialog */
	char *label;	 /* what the user typed last */
} Import;

static void
import_free(Import *im)
{
	dv_unref(im->dv);
	kmx_secret_unref(im->data);
	g_free(im->name);
	g_free(im->label);
	g_free(im);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Import, import_free)

static void import_ask(Import *im, const char *problem);

static void
import_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(Import) im = user_data;
	g_autoptr(GError) error = NULL;
	GList *keys = keymux_device_import_key_finish(KEYMUX_DEVICE(source), res, &error);

	if (keys == NULL && error != NULL) {
		if (g_error_matches(error, KEYMUX_ERROR, KEYMUX_ERROR_BAD_SECRET)) {
			g_autofree char *problem =
			    g_strdup_printf("That passphrase was wrong (%s). Try again.",
					    error->message);

			import_ask(g_steal_pointer(&im), problem);
		} else
			toast_error(im->dv->panel, "Cannot import the key", error);
		return;
	}
	toast(im->dv->panel, g_list_length(keys) == 1 ? "Key imported" : "Keys imported");
	g_list_free_full(keys, g_object_unref);
}

static void
import_response(AdwMessageDialog *d, const char *response, gpointer user_data)
{
	Import *im = g_object_steal_data(G_OBJECT(d), "import");
	g_autoptr(KmxSecret) pass = take_secret(g_object_get_data(G_OBJECT(d), "passphrase"));
	GtkWidget *label = g_object_get_data(G_OBJECT(d), "label");
	g_autoptr(GBytes) bytes = NULL;

	(void)user_data;
	if (im == NULL)
		return;
	if (g_strcmp0(response, "import") != 0) {
		import_free(im);
		return;
	}
	g_free(im->label);
	im->label = g_strdup(gtk_editable_get_text(GTK_EDITABLE(label)));
	/* the bytes wipe themselves when the call is done with them */
	bytes = kmx_secret_to_bytes(im->data);
	keymux_device_import_key(im->dv->device,
				 bytes,
				 kmx_secret_get_string(pass),
				 im->label,
				 NULL,
				 import_done,
				 im);
}

static void
import_ask(Import *im, const char *problem)
{
	g_autofree char *heading = g_strdup_printf("Import “%s”", im->name);
	GtkWidget *box = vbox();
	GtkWidget *label = labelled_entry(box, gtk_entry_new(), "Label");
	AdwMessageDialog *d;

	d = dialog_new(im->dv->panel,
		       heading,
		       problem != NULL ? problem
				       : "A key in PEM or DER (PKCS#8, PKCS#1, SEC1) or an OpenSSH "
					 "private key.",
		       "import",
		       "Import",
		       ADW_RESPONSE_SUGGESTED,
		       box);
	if (im->label != NULL)
		gtk_editable_set_text(GTK_EDITABLE(label), im->label);
	g_object_set_data(G_OBJECT(d), "label", label);
	g_object_set_data(
	    G_OBJECT(d),
	    "passphrase",
	    labelled_entry(box, password_entry_new(), "Passphrase of the file, if it has one"));
	/* the dialog holds the import until it is answered or goes */
	g_object_set_data_full(G_OBJECT(d), "import", im, (GDestroyNotify)import_free);
	g_signal_connect(d, "response", G_CALLBACK(import_response), NULL);
	gtk_window_present(GTK_WINDOW(d));
	gtk_widget_grab_focus(label);
}

/* in a worker thread: the file's bytes straight into locked memory, a
 * device file, a FIFO or a file that grows refused, not read forever */
static void
import_read(GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
	GError *error = NULL;
	KmxSecret *data =
	    kmx_secret_read_file(G_FILE(source), KMX_PANEL_IMPORT_MAX, cancellable, &error);

	(void)task_data;
	if (data == NULL)
		g_task_return_error(task, error);
	else
		g_task_return_pointer(task, data, (GDestroyNotify)kmx_secret_unref);
}

static void
import_loaded(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(DeviceView) dv = user_data;
	g_autoptr(GError) error = NULL;
	KmxSecret *data = g_task_propagate_pointer(G_TASK(res), &error);
	Import *im;

	if (data == NULL) {
		toast_error(dv->panel, "Cannot import the file", error);
		return;
	}
	im = g_new0(Import, 1);
	im->dv = g_steal_pointer(&dv);
	im->data = data;
	im->name = g_file_get_basename(G_FILE(source));
	import_ask(im, NULL);
}

static void
import_chosen(GtkNativeDialog *chooser, int response, DeviceView *dv)
{
	if (response == GTK_RESPONSE_ACCEPT) {
		g_autoptr(GFile) file = gtk_file_chooser_get_file(GTK_FILE_CHOOSER(chooser));
		g_autoptr(GTask) task = NULL;

		if (file != NULL) {
			task = g_task_new(file, NULL, import_loaded, dv_ref(dv));
			g_task_run_in_thread(task, import_read);
		}
	}
	g_object_unref(chooser);
}

static void
on_import(DeviceView *dv)
{
	GtkFileChooserNative *chooser = gtk_file_chooser_native_new("Import a Key",
								    dv->panel->window,
								    GTK_FILE_CHOOSER_ACTION_OPEN,
								    "Open",
								    "Cancel");

	g_signal_connect_data(chooser,
			      "response",
			      G_CALLBACK(import_chosen),
			      dv_ref(dv),
			      dv_unref_closure,
			      0);
	gtk_native_dialog_show(GTK_NATIVE_DIALOG(chooser));
}

/* register a card, or forget it */

static void
register_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(DeviceView) dv = user_data;
	g_autoptr(GError) error = NULL;

	if (!keymux_device_register_finish(KEYMUX_DEVICE(source), res, &error))
		toast_error(dv->panel, "Cannot register the device", error);
}

static void
unregister_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(DeviceView) dv = user_data;
	g_autoptr(GError) error = NULL;

	if (!keymux_device_unregister_finish(KEYMUX_DEVICE(source), res, &error))
		toast_error(dv->panel, "Cannot forget the device", error);
}

/* each call has its own callback: a second click while the first call is
 * under way finishes each with its own _finish */
static void
on_register(DeviceView *dv)
{
	if (keymux_device_get_registered(dv->device))
		keymux_device_unregister(dv->device, NULL, unregister_done, dv_ref(dv));
	else
		keymux_device_register(dv->device, NULL, register_done, dv_ref(dv));
}

static DeviceView *
device_view_new(Panel *p, KeymuxDevice *device)
{
	DeviceView *dv = g_rc_box_new0(DeviceView);
	GtkWidget *buttons = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
	GtkWidget *more = adw_action_row_new();

	dv->panel = p;
	dv->device = g_object_ref(device);
	dv->keys = g_hash_table_new_full(NULL, NULL, NULL, key_view_free);
	dv->group = ADW_PREFERENCES_GROUP(adw_preferences_group_new());
	dv->state_row = ADW_ACTION_ROW(adw_action_row_new());
	adw_preferences_row_set_title(ADW_PREFERENCES_ROW(dv->state_row), "State");

	dv->lock_button = button_new("Lock", NULL, "", NULL);
	dv->unlock_button = button_new("Unlock…", NULL, "", NULL);
	gtk_widget_add_css_class(dv->unlock_button, "suggested-action");
	adw_action_row_add_suffix(dv->state_row, dv->lock_button);
	adw_action_row_add_suffix(dv->state_row, dv->unlock_button);

	dv->generate_button = button_new("Generate…", NULL, "", NULL);
	dv->import_button = button_new("Import…", NULL, "", NULL);
	dv->passwd_button = button_new("Change Password…", NULL, "", NULL);
	dv->register_button = button_new("Register", NULL, "", NULL);
	gtk_box_append(GTK_BOX(buttons), dv->generate_button);
	gtk_box_append(GTK_BOX(buttons), dv->import_button);
	adw_preferences_group_set_header_suffix(dv->group, buttons);
	adw_preferences_row_set_title(ADW_PREFERENCES_ROW(more),
				      g_strcmp0(secret_word(device), "PIN") == 0
					  ? "PIN and registration"
					  : "Password and registration");
	set_a11y_label(more, adw_preferences_row_get_title(ADW_PREFERENCES_ROW(more)));
	adw_action_row_add_suffix(ADW_ACTION_ROW(more), dv->passwd_button);
	adw_action_row_add_suffix(ADW_ACTION_ROW(more), dv->register_button);
	adw_preferences_group_add(dv->group, GTK_WIDGET(dv->state_row));
	adw_preferences_group_add(dv->group, more);

	g_signal_connect_swapped(dv->lock_button, "clicked", G_CALLBACK(on_lock), dv);
	g_signal_connect_swapped(dv->unlock_button, "clicked", G_CALLBACK(on_unlock), dv);
	g_signal_connect_swapped(dv->generate_button, "clicked", G_CALLBACK(on_generate), dv);
	g_signal_connect_swapped(dv->import_button, "clicked", G_CALLBACK(on_import), dv);
	g_signal_connect_swapped(dv->passwd_button, "clicked", G_CALLBACK(on_passwd), dv);
	g_signal_connect_swapped(dv->register_button, "clicked", G_CALLBACK(on_register), dv);
	g_signal_connect_swapped(device, "notify", G_CALLBACK(device_view_update), dv);
	device_view_update(dv);
	adw_preferences_page_add(p->page, dv->group);
	for (GList *l = keymux_device_get_keys(device); l != NULL; l = l->next)
		g_hash_table_insert(dv->keys, l->data, key_view_new(dv, l->data));
	return dv;
}

static void
device_view_free(gpointer data)
{
	DeviceView *dv = data;

	g_hash_table_destroy(dv->keys);
	g_signal_handlers_disconnect_by_data(dv->device, dv);
	if (!dv->panel->closing)
		adw_preferences_page_remove(dv->panel->page, dv->group);
	dv_unref(dv);
}

/* ---- the client's signals ------------------------------------------------ */

static void
on_device_added(Panel *p, KeymuxDevice *device)
{
	const char *path = g_dbus_proxy_get_object_path(G_DBUS_PROXY(device));

	if (!g_hash_table_contains(p->devices, path))
		g_hash_table_insert(p->devices, g_strdup(path), device_view_new(p, device));
}

static void
on_device_removed(Panel *p, KeymuxDevice *device)
{
	g_hash_table_remove(p->devices, g_dbus_proxy_get_object_path(G_DBUS_PROXY(device)));
}

static void
on_key_added(Panel *p, KeymuxKey *key)
{
	DeviceView *dv = g_hash_table_lookup(p->devices, keymux_key_get_device_path(key));

	if (dv != NULL && !g_hash_table_contains(dv->keys, key))
		g_hash_table_insert(dv->keys, key, key_view_new(dv, key));
}

static void
on_key_removed(Panel *p, KeymuxKey *key)
{
	DeviceView *dv = g_hash_table_lookup(p->devices, keymux_key_get_device_path(key));

	if (dv != NULL)
		g_hash_table_remove(dv->keys, key);
}

/* ---- the prompter, registered while a window of the panel is focused ----- */

static void
prompt_response(AdwMessageDialog *d, const char *response, KeymuxPromptRequest *request)
{
	g_autoptr(KmxSecret) secret = take_secret(g_object_get_data(G_OBJECT(d), "entry"));

	if (g_strcmp0(response, "unlock") == 0)
		keymux_prompt_request_reply(request, kmx_secret_get_string(secret));
	else
		keymux_prompt_request_cancel(request);
}

/* keymuxd withdrew the question: nobody waits for the answer, the dialog
 * goes (its "cancel" response is then ignored by the request) */
static void
prompt_withdrawn(KeymuxPrompter *prompter, const char *device_path, AdwMessageDialog *d)
{
	if (g_strcmp0(device_path, g_object_get_data(G_OBJECT(d), "device-path")) == 0)
		gtk_window_close(GTK_WINDOW(d));
}

static gboolean
on_ask_secret(KeymuxPrompter *prompter, KeymuxPromptRequest *request, Panel *p)
{
	GVariant *hints = keymux_prompt_request_get_hints(request);
	const char *label = NULL;
	const char *kind = NULL;
	const char *caller = NULL;
	g_autofree char *heading = NULL;
	g_autofree char *body = NULL;
	GtkWidget *box = vbox();
	GtkWidget *entry;
	AdwMessageDialog *d;
	gint32 retries = -1;

	if (hints != NULL) {
		g_variant_lookup(hints, "label", "&s", &label);
		g_variant_lookup(hints, "kind", "&s", &kind);
		g_variant_lookup(hints, "caller", "&s", &caller);
		g_variant_lookup(hints, "retries", "i", &retries);
	}
	heading = g_strdup_printf("Unlock %s", label != NULL ? label : "a Device");
	if (retries >= 0)
		body = g_strdup_printf("%s\n%s%s%d %s left.",
				       keymux_prompt_request_get_message(request),
				       caller != NULL ? caller : "",
				       caller != NULL ? " asks. " : "",
				       retries,
				       retries == 1 ? "try" : "tries");
	else
		body = g_strdup_printf("%s%s%s",
				       keymux_prompt_request_get_message(request),
				       caller != NULL ? "\nAsked by " : "",
				       caller != NULL ? caller : "");
	entry = labelled_entry(box,
			       password_entry_new(),
			       g_strcmp0(kind, "admin") == 0 ? "Admin PIN" : "Password");
	d = dialog_new(p, heading, body, "unlock", "Unlock", ADW_RESPONSE_SUGGESTED, box);
	g_object_set_data(G_OBJECT(d), "entry", entry);
	g_object_set_data_full(G_OBJECT(d),
			       "device-path",
			       g_strdup(keymux_prompt_request_get_device_path(request)),
			       g_free);
	g_signal_connect_object(prompter, "cancelled", G_CALLBACK(prompt_withdrawn), d, 0);
	g_signal_connect_data(d,
			      "response",
			      G_CALLBACK(prompt_response),
			      g_object_ref(request),
			      (GClosureNotify)(void (*)(void))g_object_unref,
			      0);
	gtk_window_present(GTK_WINDOW(d));
	gtk_widget_grab_focus(entry);
	return TRUE;
}

static void
prompter_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
	g_autoptr(GError) error = NULL;
	gboolean registering = GPOINTER_TO_INT(user_data);
	gboolean ok = registering
			  ? keymux_prompter_register_finish(KEYMUX_PROMPTER(source), res, &error)
			  : keymux_prompter_unregister_finish(KEYMUX_PROMPTER(source), res, &error);

	if (!ok)
		g_message("Cannot %s the prompter: %s",
			  registering ? "register" : "unregister",
			  error->message);
	else
		g_debug("prompter %s", registering ? "registered" : "unregistered");
}

static gboolean
panel_update_prompter(gpointer user_data)
{
	Panel *p = user_data;
	gboolean focused = FALSE;

	p->prompter_idle = 0;
	for (GList *l = gtk_application_get_windows(GTK_APPLICATION(p->app)); l != NULL;
	     l = l->next)
		focused |= gtk_window_is_active(l->data);
	if (p->prompter == NULL || focused == p->prompter_registered)
		return G_SOURCE_REMOVE;
	/* calls on one connection are answered in order: the last one wins */
	p->prompter_registered = focused;
	if (focused)
		keymux_prompter_register(p->prompter, NULL, prompter_done, GINT_TO_POINTER(TRUE));
	else
		keymux_prompter_unregister(p->prompter,
					   NULL,
					   prompter_done,
					   GINT_TO_POINTER(FALSE));
	return G_SOURCE_REMOVE;
}

/* focus moves from the window to a dialog through "nobody": decide once it settled */
static void
panel_update_prompter_later(Panel *p)
{
	if (p->prompter_idle == 0)
		p->prompter_idle = g_idle_add(panel_update_prompter, p);
}

/* ---- the window ---------------------------------------------------------- */

static void
client_ready(GObject *source, GAsyncResult *res, gpointer user_data)
{
	Panel *p = user_data;
	g_autoptr(GError) error = NULL;

	(void)source;
	p->client = keymux_client_new_finish(res, &error);
	if (p->closing)
		return;
	if (p->client == NULL) {
		g_autofree char *text =
		    g_strdup_printf("The keystore service does not answer: %s", error->message);

		g_message("%s", text);
		adw_status_page_set_title(p->status, "Keys Are Not Available");
		adw_status_page_set_description(p->status, text);
		set_a11y_label(p->status, "Keys are not available");
		return;
	}
	g_signal_connect_swapped(p->client, "device-added", G_CALLBACK(on_device_added), p);
	g_signal_connect_swapped(p->client, "device-removed", G_CALLBACK(on_device_removed), p);
	g_signal_connect_swapped(p->client, "key-added", G_CALLBACK(on_key_added), p);
	g_signal_connect_swapped(p->client, "key-removed", G_CALLBACK(on_key_removed), p);
	for (GList *l = keymux_client_get_devices(p->client); l != NULL; l = l->next)
		on_device_added(p, l->data);
	p->prompter = keymux_prompter_new(p->client);
	g_signal_connect(p->prompter, "ask-secret", G_CALLBACK(on_ask_secret), p);
	gtk_stack_set_visible_child(p->stack, GTK_WIDGET(p->page));
	panel_update_prompter_later(p);
}

/* the window and its widgets go: so do the views, and the signals that
 * would update them */
static void
panel_window_destroyed(Panel *p)
{
	p->closing = TRUE;
	if (p->client != NULL)
		g_signal_handlers_disconnect_by_data(p->client, p);
	g_hash_table_remove_all(p->devices);
	p->window = NULL;
}

static void
panel_activate(GApplication *app, Panel *p)
{
	GtkWidget *box;
	GtkWidget *header;

	if (p->window != NULL) {
		gtk_window_present(p->window);
		return;
	}
	p->window = GTK_WINDOW(adw_application_window_new(GTK_APPLICATION(app)));
	gtk_window_set_title(p->window, "Keys");
	gtk_window_set_default_size(p->window, 720, 760);
	gtk_window_set_icon_name(p->window, KMX_PANEL_APP_ID);
	set_a11y_label(p->window, "Keys");
	box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 0);
	header = adw_header_bar_new();
	adw_header_bar_set_title_widget(ADW_HEADER_BAR(header),
					adw_window_title_new("Keys", "keymux"));
	gtk_box_append(GTK_BOX(box), header);
	p->toasts = ADW_TOAST_OVERLAY(adw_toast_overlay_new());
	gtk_widget_set_vexpand(GTK_WIDGET(p->toasts), TRUE);
	p->stack = GTK_STACK(gtk_stack_new());
	p->page = ADW_PREFERENCES_PAGE(adw_preferences_page_new());
	adw_preferences_page_set_title(p->page, "Keys");
	adw_preferences_page_set_icon_name(p->page, "dialog-password-symbolic");
	p->status = ADW_STATUS_PAGE(adw_status_page_new());
	adw_status_page_set_icon_name(p->status, "dialog-password-symbolic");
	adw_status_page_set_title(p->status, "Connecting to the Keystore…");
	gtk_stack_add_child(p->stack, GTK_WIDGET(p->status));
	gtk_stack_add_child(p->stack, GTK_WIDGET(p->page));
	adw_toast_overlay_set_child(p->toasts, GTK_WIDGET(p->stack));
	gtk_box_append(GTK_BOX(box), GTK_WIDGET(p->toasts));
	adw_application_window_set_content(ADW_APPLICATION_WINDOW(p->window), box);
	g_signal_connect_swapped(p->window,
				 "notify::is-active",
				 G_CALLBACK(panel_update_prompter_later),
				 p);
	g_signal_connect_swapped(p->window, "destroy", G_CALLBACK(panel_window_destroyed), p);
	gtk_window_present(p->window);
	keymux_client_new(NULL, client_ready, p);
}

int
main(int argc, char **argv)
{
	Panel panel = {0};
	int status;

	panel.devices = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, device_view_free);
	panel.app = adw_application_new(KMX_PANEL_APP_ID, G_APPLICATION_DEFAULT_FLAGS);
	g_signal_connect(panel.app, "activate", G_CALLBACK(panel_activate), &panel);
	status = g_application_run(G_APPLICATION(panel.app), argc, argv);
	if (panel.prompter_idle != 0)
		g_source_remove(panel.prompter_idle);
	g_hash_table_destroy(panel.devices);
	g_clear_object(&panel.prompter);
	g_clear_object(&panel.client);
	g_object_unref(panel.app);
	return status;
}
