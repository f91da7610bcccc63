/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: atomic, durable file writes
 *
 * A write is g_file_set_contents_full() with CONSISTENT | DURABLE (a temp
 * file "<name>.XXXXXX" in the same directory, write, fsync, rename over the
 * target), then an fsync of the directory.  After a crash at any point the
 * file is either the old one or the new one, and once we return the new one
 * survives a crash.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "kmx-error.h"
#include "kmx-file.h"

static gboolean
kmx_file_error(GError **error, int errsv, const char *what, const char *path)
{
	g_set_error(error,
		    KMX_ERROR,
		    KMX_ERROR_FAILED,
		    "cannot %s %s: %s; check the disk is not full and the directory is writable",
		    what,
		    path,
		    g_strerror(errsv));
	return FALSE;
}

/**
 * kmx_file_fsync_dir:
 *
 * Makes a rename or unlink in @dir durable.
 */
gboolean
kmx_file_fsync_dir(const char *dir, GError **error)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kmx_file_error(error, errno, "open directory", dir);
	if (fsync(fd) != 0) {
		int errsv = errno;
		close(fd);
		return kmx_file_error(error, errsv, "sync directory", dir);
	}
	close(fd);
	return TRUE;
}

/**
 * kmx_file_write_atomic:
 * @path: the file to replace
 * @data: its new content
 * @len: the length of @data
 * @mode: permissions of the new file, e.g. 0600
 *
 * Replaces @path atomically and durably.
 */
gboolean
kmx_file_write_atomic(const char *path, const void *data, gsize len, int mode, GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autoptr(GError) error_local = NULL;

	g_return_val_if_fail(len <= G_MAXSSIZE, FALSE);
	if (!g_file_set_contents_full(path,
				      data,
				      (gssize)len,
				      G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
				      mode,
				      &error_local)) {
		g_set_error(error,
			    KMX_ERROR,
			    KMX_ERROR_FAILED,
			    "%s; check the disk is not full and the directory is writable",
			    error_local->message);
		return FALSE;
	}
	/* GLib syncs the file but not the directory, so the rename could be lost */
	return kmx_file_fsync_dir(dir, error);
}

/**
 * kmx_file_remove_durable:
 *
 * Removes @path (a missing file is fine) and syncs its directory.
 */
gboolean
kmx_file_remove_durable(const char *path, GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);

	if (g_unlink(path) != 0 && errno != ENOENT)
		return kmx_file_error(error, errno, "remove", path);
	return kmx_file_fsync_dir(dir, error);
}
