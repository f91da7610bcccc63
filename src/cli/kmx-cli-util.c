/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymuxctl: input, secrets from the terminal, tables and JSON */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <gio/gunixinputstream.h>
#include <gnutls/gnutls.h>

#include "keymuxctl.h"
#include "kmx-encoding.h"

#define KMX_CLI_SECRET_MAX 4096

/**
 * kmx_cli_read_file:
 * @path: (nullable): a file, or "-" or %NULL for stdin
 *
 * Returns: (transfer full): the whole content
 */
GBytes *
kmx_cli_read_file(const char *path, GError **error)
{
	g_autoptr(GInputStream) stream = NULL;
	g_autoptr(GOutputStream) memory = NULL;
	char *data = NULL;
	gsize len = 0;

	if (path != NULL && g_strcmp0(path, "-") != 0) {
		if (!g_file_get_contents(path, &data, &len, error))
			return NULL;
		return g_bytes_new_take(data, len);
	}
	stream = g_unix_input_stream_new(STDIN_FILENO, FALSE);
	memory = g_memory_output_stream_new_resizable();
	if (g_output_stream_splice(memory,
				   stream,
				   G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
				   NULL,
				   error) < 0) {
		g_prefix_error(error, "cannot read stdin: ");
		return NULL;
	}
	return g_memory_output_stream_steal_as_bytes(G_MEMORY_OUTPUT_STREAM(memory));
}

/**
 * kmx_cli_read_secret_file:
 * @path: (nullable): a file, or "-" or %NULL for stdin
 *
 * Reads a file that holds a secret, e.g. a private key, straight into
 * secret memory, at most KMX_CLI_SECRET_FILE_MAX bytes (a device file or
 * an endless stdin is refused, not read until memory runs out).
 *
 * Returns: (transfer full): the content
 */
KmxSecret *
kmx_cli_read_secret_file(const char *path, GError **error)
{
	g_autoptr(GInputStream) in = NULL;
	g_autoptr(GFile) file = NULL;
	KmxSecret *data;

	if (path != NULL && g_strcmp0(path, "-") != 0) {
		file = g_file_new_for_path(path);
		data = kmx_secret_read_file(file, KMX_CLI_SECRET_FILE_MAX, NULL, error);
		if (data == NULL)
			g_prefix_error(error, "cannot read %s: ", path);
		return data;
	}
	in = g_unix_input_stream_new(STDIN_FILENO, FALSE);
	data = kmx_secret_read_stream(in, KMX_CLI_SECRET_FILE_MAX, NULL, error);
	if (data == NULL)
		g_prefix_error(error, "cannot read stdin: ");
	return data;
}

/**
 * kmx_cli_write_all:
 *
 * Writes all of @data to @fd, through short writes and EINTR.
 */
gboolean
kmx_cli_write_all(int fd, const void *data, gsize len, GError **error)
{
	const guint8 *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int errsv = errno;
			g_set_error(error,
				    G_IO_ERROR,
				    g_io_error_from_errno(errsv),
				    "cannot write the output: %s",
				    g_strerror(errsv));
			return FALSE;
		}
		p += n;
		len -= (gsize)n;
	}
	return TRUE;
}

gboolean
kmx_cli_stdin_is_tty(void)
{
	return isatty(STDIN_FILENO) == 1;
}

/* the terminal as it was before we turned echo off, for the signal handler */
static struct termios kmx_cli_saved_termios;
static volatile sig_atomic_t kmx_cli_echo_off_fd = -1;

static void
kmx_cli_restore_echo_and_die(int signum)
{
	if (kmx_cli_echo_off_fd >= 0)
		tcsetattr(kmx_cli_echo_off_fd, TCSAFLUSH, &kmx_cli_saved_termios);
	signal(signum, SIG_DFL);
	raise(signum);
}

/* reads one line into a secret, byte by byte, so no stdio buffer keeps a copy */
KmxSecret *
kmx_cli_read_line(int fd, GError **error)
{
	g_autoptr(KmxSecret) secret = kmx_secret_new(KMX_CLI_SECRET_MAX);
	guint8 *buf = kmx_secret_get_data(secret);
	gsize len = 0;
	gboolean got_any = FALSE;

	for (;;) {
		guint8 c;
		ssize_t n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int errsv = errno;
			g_set_error(error,
				    G_IO_ERROR,
				    g_io_error_from_errno(errsv),
				    "cannot read the secret: %s",
				    g_strerror(errsv));
			return NULL;
		}
		if (n == 0)
			break;
		got_any = TRUE;
		if (c == '\n')
			break;
		if (len == KMX_CLI_SECRET_MAX) {
			g_set_error(error,
				    G_IO_ERROR,
				    G_IO_ERROR_INVALID_DATA,
				    "the secret is longer than %d bytes",
				    KMX_CLI_SECRET_MAX);
			return NULL;
		}
		buf[len++] = c;
	}
	if (!got_any) {
		g_set_error_literal(error,
				    G_IO_ERROR,
				    G_IO_ERROR_INVALID_DATA,
				    "no secret given: the input ended before a line was read");
		return NULL;
	}
	/* a file written on another system may end its lines with CR LF */
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	kmx_secret_truncate(secret, len);
	return g_steal_pointer(&secret);
}

/**
 * kmx_cli_read_secret:
 * @fd: where to read, or -1 for stdin
 * @prompt: what to ask when @fd is a terminal
 *
 * Reads one secret: from a terminal without echo after showing @prompt on
 * stderr, else one line of @fd, without its newline.
 *
 * Returns: (transfer full): the secret
 */
KmxSecret *
kmx_cli_read_secret(int fd, const char *prompt, GError **error)
{
	struct termios noecho;
	struct sigaction action = {0};
	struct sigaction old_int;
	struct sigaction old_term;
	KmxSecret *secret;

	if (fd < 0)
		fd = STDIN_FILENO;
	if (!isatty(fd) || tcgetattr(fd, &kmx_cli_saved_termios) != 0)
		return kmx_cli_read_line(fd, error);

	noecho = kmx_cli_saved_termios;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	/* Ctrl-C while echo is off must not leave the terminal silent */
	action.sa_handler = kmx_cli_restore_echo_and_die;
	sigemptyset(&action.sa_mask);
	sigaction(SIGINT, &action, &old_int);
	sigaction(SIGTERM, &action, &old_term);
	kmx_cli_echo_off_fd = fd;
	tcsetattr(fd, TCSAFLUSH, &noecho);
	/* prompt only once echo is off, so nothing typed after it is shown */
	g_printerr("%s", prompt);

	secret = kmx_cli_read_line(fd, error);

	tcsetattr(fd, TCSAFLUSH, &kmx_cli_saved_termios);
	kmx_cli_echo_off_fd = -1;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return secret;
}

/**
 * kmx_cli_confirm:
 * @question: a yes/no question
 *
 * Asks on the terminal; anything but "y" or "yes" is no.
 */
gboolean
kmx_cli_confirm(const char *question)
{
	char answer[16] = {0};

	g_printerr("%s [y/N] ", question);
	if (fgets(answer, sizeof(answer), stdin) == NULL)
		return FALSE;
	g_strstrip(answer);
	return g_ascii_strcasecmp(answer, "y") == 0 || g_ascii_strcasecmp(answer, "yes") == 0;
}

/**
 * kmx_cli_to_hex:
 *
 * Returns: (transfer full): @data as lowercase hex digits
 */
char *
kmx_cli_to_hex(const guint8 *data, gsize len)
{
	gnutls_datum_t in = {(unsigned char *)data, (unsigned int)len};
	size_t size = 2 * len + 1;
	char *hex;

	g_return_val_if_fail(len < G_MAXUINT / 2, g_strdup(""));
	hex = g_malloc(size);
	hex[0] = '\0';
	/* gnutls fails only when the buffer is too small, and it is not */
	if (len > 0 && gnutls_hex_encode(&in, hex, &size) < 0) {
		g_critical("cannot write %" G_GSIZE_FORMAT " bytes as hex", len);
		hex[0] = '\0';
	}
	return hex;
}

/**
 * kmx_cli_pem_encode:
 * @label: e.g. "PUBLIC KEY"
 *
 * Returns: (transfer full): @der in PEM armor, 64 columns, as RFC 7468 says
 */
char *
kmx_cli_pem_encode(const char *label, const guint8 *der, gsize len)
{
	g_autofree char *b64 = g_base64_encode(der, len);
	GString *pem = g_string_new(NULL);
	gsize total = strlen(b64);

	g_string_append_printf(pem, "-----BEGIN %s-----\n", label);
	for (gsize i = 0; i < total; i += 64) {
		g_string_append_len(pem, b64 + i, MIN(64, total - i));
		g_string_append_c(pem, '\n');
	}
	g_string_append_printf(pem, "-----END %s-----\n", label);
	return g_string_free(pem, FALSE);
}

/**
 * kmx_cli_pem_decode:
 * @input: PEM or DER
 * @label: the PEM label expected, e.g. "PUBLIC KEY"
 *
 * Returns: (transfer full): the DER inside the armor, or @input itself when
 * it is not PEM
 */
GBytes *
kmx_cli_pem_decode(GBytes *input, const char *label, GError **error)
{
	gsize len = 0;
	const char *data = g_bytes_get_data(input, &len);
	g_autoptr(KmxSecret) der = NULL;

	if (len == 0 || memchr(data, '\0', len) != NULL ||
	    g_strstr_len(data, (gssize)len, "-----BEGIN ") == NULL)
		return g_bytes_ref(input);
	der = kmx_pem_decode_secret(data, len, label, error);
	if (der == NULL)
		return NULL;
	return kmx_secret_to_bytes(der);
}

/**
 * kmx_cli_check_output_format:
 *
 * Checks the output options of a command that prints binary data, before
 * it asks the daemon for anything.
 */
gboolean
kmx_cli_check_output_format(const char *command, gboolean base64, gboolean hex, GError **error)
{
	if (base64 && hex) {
		g_set_error(error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_BAD_VALUE,
			    "%s: --base64 and --hex exclude each other",
			    command);
		return FALSE;
	}
	return TRUE;
}

/**
 * kmx_cli_write_binary:
 * @data: bytes answered by keymuxd
 * @wipe: @data is a secret (a plaintext, a shared secret): zero it once written
 *
 * Writes @data to stdout: raw, or one line of base64 or hex.
 */
gboolean
kmx_cli_write_binary(GBytes *data, gboolean base64, gboolean hex, gboolean wipe, GError **error)
{
	gsize len = 0;
	guint8 *p = (guint8 *)g_bytes_get_data(data, &len);
	g_autofree char *text = NULL;
	gboolean ok;

	if (base64)
		text = g_base64_encode(p, len);
	else if (hex)
		text = kmx_cli_to_hex(p, len);
	if (text == NULL) {
		ok = kmx_cli_write_all(STDOUT_FILENO, p, len, error);
	} else {
		ok = kmx_cli_write_all(STDOUT_FILENO, text, strlen(text), error) &&
		     kmx_cli_write_all(STDOUT_FILENO, "\n", 1, error);
		if (wipe)
			kmx_secure_zero(text, strlen(text));
	}
	/* the reply is ours alone, so its buffer may be wiped in place */
	if (wipe && p != NULL)
		kmx_secure_zero(p, len);
	return ok;
}

/**
 * kmx_cli_short_id:
 *
 * Returns: (transfer full): the first 16 hex digits of a key id, enough for
 * people and for every command
 */
char *
kmx_cli_short_id(const char *id)
{
	return g_strndup(id != NULL ? id : "", 16);
}

char *
kmx_cli_usage_string(const char *const *usage)
{
	if (usage == NULL || usage[0] == NULL)
		return g_strdup("-");
	return g_strjoinv(",", (char **)usage);
}

/* tables */

struct _KmxTable {
	guint columns;
	GPtrArray *rows; /* of char ** */
};

/**
 * kmx_table_new:
 * @columns: the number of columns, followed by as many header strings
 */
KmxTable *
kmx_table_new(guint columns, ...)
{
	KmxTable *self = g_new0(KmxTable, 1);
	va_list args;

	self->columns = columns;
	self->rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
	va_start(args, columns);
	{
		char **row = g_new0(char *, columns + 1);
		for (guint i = 0; i < columns; i++)
			row[i] = g_strdup(va_arg(args, const char *));
		g_ptr_array_add(self->rows, row);
	}
	va_end(args);
	return self;
}

/**
 * kmx_table_add_row:
 * @self: a table
 *
 * Takes as many strings (copied; %NULL is shown as "-") as the table has columns.
 */
void
kmx_table_add_row(KmxTable *self, ...)
{
	char **row = g_new0(char *, self->columns + 1);
	va_list args;

	va_start(args, self);
	for (guint i = 0; i < self->columns; i++) {
		const char *value = va_arg(args, const char *);
		/* a label with a newline or tab would break the columns */
		row[i] = g_strdelimit(g_strdup(value != NULL && *value != '\0' ? value : "-"),
				      "\t\r\n",
				      ' ');
	}
	va_end(args);
	g_ptr_array_add(self->rows, row);
}

void
kmx_table_print(KmxTable *self)
{
	g_autofree glong *widths = g_new0(glong, self->columns);
	g_autoptr(GString) line = g_string_new(NULL);

	for (guint r = 0; r < self->rows->len; r++) {
		char **row = g_ptr_array_index(self->rows, r);
		for (guint c = 0; c < self->columns; c++)
			widths[c] = MAX(widths[c], g_utf8_strlen(row[c], -1));
	}
	for (guint r = 0; r < self->rows->len; r++) {
		char **row = g_ptr_array_index(self->rows, r);
		g_string_truncate(line, 0);
		for (guint c = 0; c < self->columns; c++) {
			g_string_append(line, row[c]);
			if (c + 1 == self->columns)
				break;
			for (glong pad = g_utf8_strlen(row[c], -1); pad < widths[c] + 2; pad++)
				g_string_append_c(line, ' ');
		}
		g_print("%s\n", line->str);
	}
}

void
kmx_table_free(KmxTable *self)
{
	g_ptr_array_unref(self->rows);
	g_free(self);
}

/* json */

struct _KmxJson {
	GString *str;
	GArray *first; /* per open container: nothing written in it yet */
	gboolean after_key;
};

KmxJson *
kmx_json_new(void)
{
	KmxJson *self = g_new0(KmxJson, 1);

	self->str = g_string_new(NULL);
	self->first = g_array_new(FALSE, FALSE, sizeof(gboolean));
	return self;
}

void
kmx_json_free(KmxJson *self)
{
	g_string_free(self->str, TRUE);
	g_array_unref(self->first);
	g_free(self);
}

/* writes the comma before a value, unless it is the first or follows a key */
static void
kmx_json_separate(KmxJson *self)
{
	gboolean *first;

	if (self->after_key) {
		self->after_key = FALSE;
		return;
	}
	if (self->first->len == 0)
		return;
	first = &g_array_index(self->first, gboolean, self->first->len - 1);
	if (!*first)
		g_string_append_c(self->str, ',');
	*first = FALSE;
}

static void
kmx_json_open(KmxJson *self, char c)
{
	gboolean first = TRUE;

	kmx_json_separate(self);
	g_string_append_c(self->str, c);
	g_array_append_val(self->first, first);
}

static void
kmx_json_close(KmxJson *self, char c)
{
	g_return_if_fail(self->first->len > 0);
	g_array_set_size(self->first, self->first->len - 1);
	g_string_append_c(self->str, c);
}

void
kmx_json_begin_object(KmxJson *self)
{
	kmx_json_open(self, '{');
}

void
kmx_json_end_object(KmxJson *self)
{
	kmx_json_close(self, '}');
}

void
kmx_json_begin_array(KmxJson *self)
{
	kmx_json_open(self, '[');
}

void
kmx_json_end_array(KmxJson *self)
{
	kmx_json_close(self, ']');
}

static void
kmx_json_append_escaped(GString *str, const char *value)
{
	g_autofree char *valid = g_utf8_make_valid(value != NULL ? value : "", -1);

	g_string_append_c(str, '"');
	for (const char *p = valid; *p != '\0'; p++) {
		guchar c = (guchar)*p;
		switch (c) {
		case '"':
			g_string_append(str, "\\\"");
			break;
		case '\\':
			g_string_append(str, "\\\\");
			break;
		case '\b':
			g_string_append(str, "\\b");
			break;
		case '\f':
			g_string_append(str, "\\f");
			break;
		case '\n':
			g_string_append(str, "\\n");
			break;
		case '\r':
			g_string_append(str, "\\r");
			break;
		case '\t':
			g_string_append(str, "\\t");
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				g_string_append_printf(str, "\\u%04x", c);
			else
				g_string_append_c(str, (char)c);
		}
	}
	g_string_append_c(str, '"');
}

void
kmx_json_key(KmxJson *self, const char *name)
{
	kmx_json_separate(self);
	kmx_json_append_escaped(self->str, name);
	g_string_append_c(self->str, ':');
	self->after_key = TRUE;
}

void
kmx_json_string(KmxJson *self, const char *value)
{
	kmx_json_separate(self);
	kmx_json_append_escaped(self->str, value);
}

void
kmx_json_boolean(KmxJson *self, gboolean value)
{
	kmx_json_separate(self);
	g_string_append(self->str, value ? "true" : "false");
}

void
kmx_json_int(KmxJson *self, gint64 value)
{
	kmx_json_separate(self);
	g_string_append_printf(self->str, "%" G_GINT64_FORMAT, value);
}

void
kmx_json_null(KmxJson *self)
{
	kmx_json_separate(self);
	g_string_append(self->str, "null");
}

void
kmx_json_strv(KmxJson *self, const char *const *strv)
{
	kmx_json_begin_array(self);
	for (guint i = 0; strv != NULL && strv[i] != NULL; i++)
		kmx_json_string(self, strv[i]);
	kmx_json_end_array(self);
}

/**
 * kmx_json_variant:
 *
 * Writes a GVariant as JSON: numbers, booleans, strings, arrays and
 * dictionaries with string keys; byte arrays become hex strings, anything
 * else its GVariant text.
 */
void
kmx_json_variant(KmxJson *self, GVariant *value)
{
	const GVariantType *type;

	if (g_variant_is_of_type(value, G_VARIANT_TYPE_VARIANT)) {
		g_autoptr(GVariant) inner = g_variant_get_variant(value);
		kmx_json_variant(self, inner);
		return;
	}
	type = g_variant_get_type(value);
	if (g_variant_type_equal(type, G_VARIANT_TYPE_BOOLEAN)) {
		kmx_json_boolean(self, g_variant_get_boolean(value));
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_BYTE)) {
		kmx_json_int(self, g_variant_get_byte(value));
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_INT16)) {
		kmx_json_int(self, g_variant_get_int16(value));
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_UINT16)) {
		kmx_json_int(self, g_variant_get_uint16(value));
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_INT32)) {
		kmx_json_int(self, g_variant_get_int32(value));
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_UINT32)) {
		kmx_json_int(self, g_variant_get_uint32(value));
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_INT64)) {
		kmx_json_int(self, g_variant_get_int64(value));
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_UINT64)) {
		/* past 2^63 it would not fit in the signed writer: keep it exact as text */
		guint64 u = g_variant_get_uint64(value);
		kmx_json_separate(self);
		g_string_append_printf(self->str, "%" G_GUINT64_FORMAT, u);
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_DOUBLE)) {
		char buf[G_ASCII_DTOSTR_BUF_SIZE];
		kmx_json_separate(self);
		g_string_append(self->str,
				g_ascii_dtostr(buf, sizeof(buf), g_variant_get_double(value)));
	} else if (g_variant_type_is_basic(type)) {
		/* strings, object paths and signatures */
		kmx_json_string(self, g_variant_get_string(value, NULL));
	} else if (g_variant_type_equal(type, G_VARIANT_TYPE_BYTESTRING)) {
		gsize len = 0;
		const guint8 *data = g_variant_get_fixed_array(value, &len, 1);
		g_autofree char *hex = kmx_cli_to_hex(data, len);
		kmx_json_string(self, hex);
	} else if (g_variant_type_is_array(type) &&
		   g_variant_type_is_dict_entry(g_variant_type_element(type)) &&
		   g_variant_type_equal(g_variant_type_key(g_variant_type_element(type)),
					G_VARIANT_TYPE_STRING)) {
		GVariantIter iter;
		const char *name;
		GVariant *child;
		kmx_json_begin_object(self);
		g_variant_iter_init(&iter, value);
		while (g_variant_iter_next(&iter, "{&s@*}", &name, &child)) {
			kmx_json_key(self, name);
			kmx_json_variant(self, child);
			g_variant_unref(child);
		}
		kmx_json_end_object(self);
	} else if (g_variant_type_is_array(type) || g_variant_type_is_tuple(type)) {
		GVariantIter iter;
		GVariant *child;
		kmx_json_begin_array(self);
		g_variant_iter_init(&iter, value);
		while ((child = g_variant_iter_next_value(&iter)) != NULL) {
			kmx_json_variant(self, child);
			g_variant_unref(child);
		}
		kmx_json_end_array(self);
	} else {
		g_autofree char *text = g_variant_print(value, TRUE);
		kmx_json_string(self, text);
	}
}

/**
 * kmx_json_print:
 *
 * Prints the document on one line of stdout.
 */
void
kmx_json_print(KmxJson *self)
{
	g_print("%s\n", self->str->str);
	fflush(stdout);
}

/**
 * kmx_cli_json_device:
 *
 * Writes one device as a JSON object; docs/keymuxctl.md lists the members.
 */
void
kmx_cli_json_device(KmxCli *cli, KmxJson *json, KeymuxDevice *device)
{
	g_autoptr(GVariant) details = keymux_device_dup_details(device);

	kmx_json_begin_object(json);
	kmx_json_key(json, "id");
	kmx_json_string(json, keymux_device_get_id(device));
	kmx_json_key(json, "label");
	kmx_json_string(json, kmx_cli_label(device));
	kmx_json_key(json, "backend");
	kmx_json_string(json, keymux_device_get_backend(device));
	kmx_json_key(json, "locked");
	kmx_json_boolean(json, keymux_device_get_locked(device));
	kmx_json_key(json, "registered");
	kmx_json_boolean(json, keymux_device_get_registered(device));
	kmx_json_key(json, "available");
	kmx_json_boolean(json, keymux_device_get_available(device));
	kmx_json_key(json, "pin_retries");
	kmx_json_int(json, keymux_device_get_pin_retries(device));
	kmx_json_key(json, "key_count");
	kmx_json_int(json, kmx_cli_device_key_count(device));
	kmx_json_key(json, "details");
	if (details != NULL)
		kmx_json_variant(json, details);
	else
		kmx_json_null(json);
	kmx_json_key(json, "object_path");
	kmx_json_string(json, g_dbus_proxy_get_object_path(G_DBUS_PROXY(device)));
	kmx_json_end_object(json);
}

/**
 * kmx_cli_device_key_count:
 *
 * Returns: the number of keys the device says it holds
 */
guint
kmx_cli_device_key_count(KeymuxDevice *device)
{
	g_auto(GStrv) keys = NULL;

	g_object_get(device, "keys", &keys, NULL);
	return keys != NULL ? g_strv_length(keys) : 0;
}

/**
 * kmx_cli_json_key:
 *
 * Writes one key as a JSON object; docs/keymuxctl.md lists the members.
 */
void
kmx_cli_json_key(KmxCli *cli, KmxJson *json, KeymuxKey *key)
{
	g_auto(GStrv) usage = keymux_key_dup_usage(key);

	kmx_json_begin_object(json);
	kmx_json_key(json, "id");
	kmx_json_string(json, keymux_key_get_id(key));
	kmx_json_key(json, "label");
	kmx_json_string(json, kmx_cli_label(key));
	kmx_json_key(json, "algorithm");
	kmx_json_string(json, keymux_key_get_algorithm(key));
	kmx_json_key(json, "usage");
	kmx_json_strv(json, (const char *const *)usage);
	kmx_json_key(json, "device");
	kmx_json_string(json, kmx_cli_key_device_id(cli, key));
	kmx_json_key(json, "locked");
	kmx_json_boolean(json, keymux_key_get_locked(key));
	kmx_json_key(json, "available");
	kmx_json_boolean(json, keymux_key_get_available(key));
	kmx_json_key(json, "exportable");
	kmx_json_boolean(json, keymux_key_get_exportable(key));
	kmx_json_key(json, "object_path");
	kmx_json_string(json, g_dbus_proxy_get_object_path(G_DBUS_PROXY(key)));
	kmx_json_end_object(json);
}
