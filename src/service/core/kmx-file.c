/* keymux: atomic, durable file writes
 *
 * A write is: a temp file in the same directory, write, fsync, rename over
 * the target, fsync of the directory.  After a crash at any point the file
 * is either the old one or the new one, and once we return the new one
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
	g_autofree char *tmp = g_strdup_printf("%s.tmp-XXXXXX", path);
	const guint8 *p = data;
	gsize done = 0;
	int fd;

	fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, mode);
	if (fd < 0)
		return kmx_file_error(error, errno, "create", tmp);
	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);
		if (n < 0) {
			int errsv = errno;
			if (errsv == EINTR)
				continue;
			close(fd);
			g_unlink(tmp);
			return kmx_file_error(error, errsv, "write", tmp);
		}
		done += (gsize)n;
	}
	if (fsync(fd) != 0) {
		int errsv = errno;
		close(fd);
		g_unlink(tmp);
		return kmx_file_error(error, errsv, "sync", tmp);
	}
	if (close(fd) != 0) {
		int errsv = errno;
		g_unlink(tmp);
		return kmx_file_error(error, errsv, "close", tmp);
	}
	if (g_rename(tmp, path) != 0) {
		int errsv = errno;
		g_unlink(tmp);
		return kmx_file_error(error, errsv, "rename", tmp);
	}
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
