/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* keymux: unit tests of the manager's bound on the work in flight, and of
 * what a request's end wakes */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "kmx-error.h"
#include "kmx-manager-private.h"

typedef struct {
	char *dir;
	char *data;
	char *conf;
} Fixture;

static void
fixture_set_up(Fixture *f, gconstpointer config)
{
	g_autofree char *text = NULL;

	f->dir = g_dir_make_tmp("kmx-service-test-XXXXXX", NULL);
	g_assert_nonnull(f->dir);
	f->data = g_build_filename(f->dir, "data", NULL);
	f->conf = g_build_filename(f->dir, "keymux.conf", NULL);
	/* no backend: the limits need no device, and no backend's thread
	 * (the card and TPM watchers) may post work for the main thread while
	 * a test counts what the manager posts */
	text = g_strdup_printf("[backends]\nsoftkey=false\ntest=false\ncard=false\ntpm=false\n"
			       "[daemon]\n%s\n",
			       (const char *)config);
	g_assert_true(g_file_set_contents(f->conf, text, -1, NULL));
}

static void
fixture_tear_down(Fixture *f, gconstpointer config)
{
	g_remove(f->conf);
	g_rmdir(f->data);
	g_rmdir(f->dir);
	g_free(f->conf);
	g_free(f->data);
	g_free(f->dir);
}

static KmxManager *
manager_new(Fixture *f)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(KmxContext) context = kmx_context_new(f->data, f->conf, &error);
	KmxManager *manager;

	g_assert_no_error(error);
	manager = kmx_manager_new(context, &error);
	g_assert_no_error(error);
	return manager;
}

static void
assert_refused(KmxManager *manager, KmxCaller *caller, const char *which)
{
	g_autoptr(GError) error = NULL;

	g_assert_false(kmx_manager_admit_request(manager, caller, &error));
	g_assert_error(error, KMX_ERROR, KMX_ERROR_FAILED);
	g_assert_nonnull(strstr(error->message, "too many requests in flight"));
	g_assert_nonnull(strstr(error->message, which));
}

static void
test_limits(Fixture *f, gconstpointer config)
{
	g_autoptr(KmxManager) manager = manager_new(f);
	g_autoptr(KmxCaller) a = kmx_caller_new(":1.1", NULL, NULL);
	g_autoptr(KmxCaller) b = kmx_caller_new(":1.2", NULL, NULL);
	g_autoptr(GError) error = NULL;

	/* a caller has 2, everyone 3 */
	g_assert_true(kmx_manager_admit_request(manager, a, &error));
	g_assert_true(kmx_manager_admit_request(manager, a, &error));
	g_assert_no_error(error);
	g_test_expect_message("keymux", G_LOG_LEVEL_WARNING, "*:1.1*2 requests in flight*");
	assert_refused(manager, a, "(2 of this caller)");
	g_test_assert_expected_messages();
	/* told once per caller */
	assert_refused(manager, a, "(2 of this caller)");
	g_assert_cmpuint(kmx_caller_get_requests(a), ==, 2);

	g_assert_true(kmx_manager_admit_request(manager, b, &error));
	g_assert_cmpuint(kmx_manager_get_requests(manager), ==, 3);
	g_test_expect_message("keymux", G_LOG_LEVEL_WARNING, "*3 requests in flight from all*");
	assert_refused(manager, b, "(3 in all");
	g_test_assert_expected_messages();
	/* the caller's own limit is told first */
	assert_refused(manager, a, "of this caller");

	/* a reply makes room, for anyone */
	kmx_manager_release_request(manager, a);
	g_assert_cmpuint(kmx_caller_get_requests(a), ==, 1);
	g_assert_true(kmx_manager_admit_request(manager, b, &error));
	g_assert_no_error(error);
	g_assert_cmpuint(kmx_caller_get_requests(b), ==, 2);

	kmx_manager_release_request(manager, a);
	kmx_manager_release_request(manager, b);
	kmx_manager_release_request(manager, b);
	g_assert_cmpuint(kmx_manager_get_requests(manager), ==, 0);
	g_assert_cmpuint(kmx_caller_get_requests(a), ==, 0);
	g_assert_cmpuint(kmx_caller_get_requests(b), ==, 0);
}

static void
test_no_limit(Fixture *f, gconstpointer config)
{
	g_autoptr(KmxManager) manager = manager_new(f);
	g_autoptr(KmxCaller) a = kmx_caller_new(":1.1", NULL, NULL);
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < 5000; i++)
		g_assert_true(kmx_manager_admit_request(manager, a, &error));
	g_assert_no_error(error);
	for (guint i = 0; i < 5000; i++)
		kmx_manager_release_request(manager, a);
	g_assert_cmpuint(kmx_manager_get_requests(manager), ==, 0);
}

static void
test_defaults(Fixture *f, gconstpointer config)
{
	g_autoptr(KmxManager) manager = NULL;
	g_autoptr(KmxCaller) a = kmx_caller_new(":1.1", NULL, NULL);
	g_autoptr(GError) error = NULL;

	/* a negative limit is a mistake: the default (64) stands */
	g_test_expect_message("keymux", G_LOG_LEVEL_WARNING, "*max-requests-per-caller must be*");
	manager = manager_new(f);
	g_test_assert_expected_messages();
	for (guint i = 0; i < 64; i++)
		g_assert_true(kmx_manager_admit_request(manager, a, &error));
	g_test_expect_message("keymux", G_LOG_LEVEL_WARNING, "*64 requests in flight*");
	assert_refused(manager, a, "(64 of this caller)");
	g_test_assert_expected_messages();
	for (guint i = 0; i < 64; i++)
		kmx_manager_release_request(manager, a);
}

static void
drain_main_context(void)
{
	while (g_main_context_iteration(NULL, FALSE))
		;
}

static gboolean
set_done(gpointer user_data)
{
	*(gboolean *)user_data = TRUE;
	return G_SOURCE_REMOVE;
}

/* whether the manager posted work for the main thread (an idle of the
 * default priority): one iteration runs only the ready sources of the
 * highest priority, so a sentinel one step below runs unless such an idle
 * is ready; a heap trim's timer, of low priority, does not count */
static gboolean
main_thread_woken(void)
{
	GSource *sentinel = g_idle_source_new();
	gboolean ran = FALSE;

	g_source_set_priority(sentinel, G_PRIORITY_DEFAULT + 1);
	g_source_set_callback(sentinel, set_done, &ran, NULL);
	g_source_attach(sentinel, NULL);
	g_main_context_iteration(NULL, FALSE);
	if (!ran)
		g_source_destroy(sentinel);
	g_source_unref(sentinel);
	return !ran;
}

/* a reply does not wake the main thread for nothing: with one call in
 * flight at a time every reply takes the count to zero */
static void
test_release_quiet(Fixture *f, gconstpointer config)
{
	g_autoptr(KmxManager) manager = manager_new(f);
	g_autoptr(KmxCaller) a = kmx_caller_new(":1.1", NULL, NULL);
	g_autoptr(GError) error = NULL;

	drain_main_context();
	for (guint i = 0; i < 100; i++) {
		g_assert_true(kmx_manager_admit_request(manager, a, &error));
		kmx_manager_release_request(manager, a);
		g_assert_false(main_thread_woken());
	}
	g_assert_no_error(error);
}

static void
count_authorized(KmxCaller *caller, const GError *error, gpointer user_data)
{
	(*(guint *)user_data)++;
}

/* ... but it does when the heap trim after a burst found it in flight */
static void
test_release_after_trim(Fixture *f, gconstpointer config)
{
	g_autoptr(KmxManager) manager = manager_new(f);
	g_autoptr(KmxCaller) a = kmx_caller_new(":1.1", NULL, NULL);
	g_autoptr(GError) error = NULL;
	GSource *wait = g_timeout_source_new(2000);
	gboolean done = FALSE;
	guint answered = 0;

	drain_main_context();
	g_assert_true(kmx_manager_admit_request(manager, a, &error));
	/* a burst: the trim is armed for a second after its last call */
	for (guint i = 0; i < 300; i++)
		kmx_manager_authorize(manager, a, count_authorized, &answered);
	g_assert_cmpuint(answered, ==, 300);
	/* later than the trim and after it when both are due */
	g_source_set_priority(wait, G_PRIORITY_LOW + 1);
	g_source_set_callback(wait, set_done, &done, NULL);
	g_source_attach(wait, NULL);
	g_source_unref(wait);
	while (!done)
		g_main_context_iteration(NULL, TRUE);
	/* the trim gave up: the request is in flight; its end calls it back */
	drain_main_context();
	kmx_manager_release_request(manager, a);
	g_assert_true(main_thread_woken());
	drain_main_context();
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	(void)KMX_ERROR;
	g_test_add("/kmx/manager/request-limits",
		   Fixture,
		   "max-requests-per-caller=2\nmax-requests=3",
		   fixture_set_up,
		   test_limits,
		   fixture_tear_down);
	g_test_add("/kmx/manager/request-no-limit",
		   Fixture,
		   "max-requests-per-caller=0\nmax-requests=0",
		   fixture_set_up,
		   test_no_limit,
		   fixture_tear_down);
	g_test_add("/kmx/manager/request-limit-defaults",
		   Fixture,
		   "max-requests-per-caller=-1",
		   fixture_set_up,
		   test_defaults,
		   fixture_tear_down);
	g_test_add("/kmx/manager/release-quiet",
		   Fixture,
		   "",
		   fixture_set_up,
		   test_release_quiet,
		   fixture_tear_down);
	g_test_add("/kmx/manager/release-after-trim",
		   Fixture,
		   "",
		   fixture_set_up,
		   test_release_after_trim,
		   fixture_tear_down);
	return g_test_run();
}
