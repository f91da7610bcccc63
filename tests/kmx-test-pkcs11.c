/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kmx-test-pkcs11: drives libkeymux-pkcs11.so the way an application does,
 * through dlopen() and C_GetFunctionList only (tests/test-pkcs11.sh)
 *
 *   kmx-test-pkcs11 MODULE rules KEYID OUT   buffer and attribute rules,
 *                                            multi-part signing; writes an
 *                                            Ed25519 signature of "message"
 *   kmx-test-pkcs11 MODULE threads KEYID     16 threads sign at once
 *   kmx-test-pkcs11 MODULE fork KEYID        a fork()ed child re-initialises
 *   kmx-test-pkcs11 MODULE locked KEYID      login on a locked device ($PIN)
 *   kmx-test-pkcs11 MODULE restart KEYID     keymuxd killed and started
 *                                            again (told on stdin)
 *   kmx-test-pkcs11 MODULE events            slots and slot events: one
 *                                            command a line on stdin, one
 *                                            answer a line on stdout
 *                                            (tests/test-pkcs11-events.sh)
 *
 * KEYID: the 64 hex digits of an Ed25519 key; "rules" also wants an RSA key
 * as RSAKEYID in the environment.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static CK_FUNCTION_LIST_PTR p11;
static const char *progname = "kmx-test-pkcs11";

#define CHECK(expr, want)                                                                          \
	do {                                                                                       \
		CK_RV rv_ = (expr);                                                                \
		if (rv_ != (CK_RV)(want)) {                                                        \
			fprintf(stderr,                                                            \
				"%s: line %d: %s: 0x%lx, expected 0x%lx\n",                        \
				progname,                                                          \
				__LINE__,                                                          \
				#expr,                                                             \
				(unsigned long)rv_,                                                \
				(unsigned long)(want));                                            \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define ASSERT(cond)                                                                               \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s: line %d: %s\n", progname, __LINE__, #cond);           \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static unsigned char key_id[32];
static unsigned char rsa_id[32];
static const unsigned char message[] = "message";

static void
parse_id(const char *hex, unsigned char id[32])
{
	ASSERT(hex != NULL && strlen(hex) == 64);
	for (int i = 0; i < 32; i++)
		ASSERT(sscanf(hex + 2 * i, "%2hhx", &id[i]) == 1);
}

static CK_SLOT_ID
first_slot(void)
{
	CK_SLOT_ID slots[8];
	CK_ULONG count = 8;

	CHECK(p11->C_GetSlotList(CK_TRUE, slots, &count), CKR_OK);
	ASSERT(count >= 1);
	return slots[0];
}

static CK_SESSION_HANDLE
open_session(void)
{
	CK_SESSION_HANDLE session;

	CHECK(p11->C_OpenSession(first_slot(), CKF_SERIAL_SESSION, NULL, NULL, &session), CKR_OK);
	return session;
}

static CK_OBJECT_HANDLE
find_key(CK_SESSION_HANDLE session, const unsigned char id[32], CK_OBJECT_CLASS klass)
{
	CK_ATTRIBUTE templ[] = {
	    {CKA_CLASS, &klass, sizeof klass},
	    {CKA_ID, (void *)id, 32},
	};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG count = 0;

	CHECK(p11->C_FindObjectsInit(session, templ, 2), CKR_OK);
	CHECK(p11->C_FindObjects(session, found, 2, &count), CKR_OK);
	CHECK(p11->C_FindObjectsFinal(session), CKR_OK);
	ASSERT(count == 1);
	return found[0];
}

/* an Ed25519 signature of message: deterministic, so every one is equal */
static CK_RV
sign_ed25519(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key, unsigned char sig[64])
{
	CK_MECHANISM mech = {CKM_EDDSA, NULL, 0};
	CK_ULONG len = 64;
	CK_RV rv = p11->C_SignInit(session, &mech, key);

	if (rv != CKR_OK)
		return rv;
	rv = p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len);
	if (rv == CKR_OK && len != 64)
		return CKR_GENERAL_ERROR;
	return rv;
}

static void
load(const char *path)
{
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);

	if (dl == NULL) {
		fprintf(stderr, "%s: %s\n", progname, dlerror());
		exit(1);
	}
	get_list = (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(dl, "C_GetFunctionList");
	ASSERT(get_list != NULL);
	CHECK(get_list(&p11), CKR_OK);
}

static void
init(void)
{
	CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
	CHECK(p11->C_Initialize(&args), CKR_OK);
}

static void
test_rules(const char *out)
{
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE priv, pub, rsa;
	unsigned char sig[64], sig2[512], sig3[512], buf[8];
	CK_ULONG len;
	CK_MECHANISM eddsa = {CKM_EDDSA, NULL, 0};
	CK_MECHANISM sha256_rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
	CK_BBOOL value;
	CK_KEY_TYPE type;
	unsigned char id[64];
	CK_ATTRIBUTE attrs[5];
	CK_SLOT_ID slot;
	FILE *f;

	CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &len), CKR_CRYPTOKI_NOT_INITIALIZED);
	init();
	CHECK(p11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	/* a slot list too short for the slots */
	len = 0;
	CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &len), CKR_OK);
	ASSERT(len >= 1);
	len = 0;
	CHECK(p11->C_GetSlotList(CK_TRUE, &slot, &len), CKR_BUFFER_TOO_SMALL);
	ASSERT(len >= 1);
	session = open_session();
	priv = find_key(session, key_id, CKO_PRIVATE_KEY);
	pub = find_key(session, key_id, CKO_PUBLIC_KEY);
	ASSERT(priv != pub);

	/* attributes: sensitive, unknown, too small, a size query, a value */
	attrs[0] = (CK_ATTRIBUTE){CKA_VALUE, buf, sizeof buf};
	attrs[1] = (CK_ATTRIBUTE){CKA_VENDOR_DEFINED | 0x4b4d58, buf, sizeof buf};
	attrs[2] = (CK_ATTRIBUTE){CKA_ID, buf, sizeof buf};
	attrs[3] = (CK_ATTRIBUTE){CKA_ID, NULL, 0};
	attrs[4] = (CK_ATTRIBUTE){CKA_SENSITIVE, &value, sizeof value};
	len = p11->C_GetAttributeValue(session, priv, attrs, 5);
	ASSERT(len == CKR_ATTRIBUTE_SENSITIVE || len == CKR_ATTRIBUTE_TYPE_INVALID ||
	       len == CKR_BUFFER_TOO_SMALL);
	ASSERT(attrs[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	ASSERT(attrs[1].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	ASSERT(attrs[2].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	ASSERT(attrs[3].ulValueLen == 32);
	ASSERT(attrs[4].ulValueLen == 1 && value == CK_TRUE);
	attrs[0] = (CK_ATTRIBUTE){CKA_VALUE, buf, sizeof buf};
	CHECK(p11->C_GetAttributeValue(session, priv, attrs, 1), CKR_ATTRIBUTE_SENSITIVE);
	attrs[0] = (CK_ATTRIBUTE){CKA_ID, id, sizeof id};
	attrs[1] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &type, sizeof type};
	attrs[2] = (CK_ATTRIBUTE){CKA_EXTRACTABLE, &value, sizeof value};
	CHECK(p11->C_GetAttributeValue(session, priv, attrs, 3), CKR_OK);
	ASSERT(attrs[0].ulValueLen == 32 && memcmp(id, key_id, 32) == 0);
	ASSERT(type == CKK_EC_EDWARDS && value == CK_FALSE);
	CHECK(p11->C_GetAttributeValue(session, 0x7fffffff, attrs, 1), CKR_OBJECT_HANDLE_INVALID);
	/* a public key cannot sign */
	CHECK(p11->C_SignInit(session, &eddsa, pub), CKR_KEY_HANDLE_INVALID);

	/* a size query, a short buffer: the operation stays; then the result */
	CHECK(p11->C_SignInit(session, &eddsa, priv), CKR_OK);
	CHECK(p11->C_SignInit(session, &eddsa, priv), CKR_OPERATION_ACTIVE);
	len = 0;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, NULL, &len), CKR_OK);
	ASSERT(len == 64);
	len = 10;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len),
	      CKR_BUFFER_TOO_SMALL);
	ASSERT(len == 64);
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len), CKR_OK);
	ASSERT(len == 64);
	/* done: the operation is over */
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig, &len),
	      CKR_OPERATION_NOT_INITIALIZED);
	f = fopen(out, "wb");
	ASSERT(f != NULL && fwrite(sig, 1, 64, f) == 64 && fclose(f) == 0);

	/* multi-part signing hashes here: the same signature as in one part
	 * (PKCS#1 v1.5 is deterministic) */
	rsa = find_key(session, rsa_id, CKO_PRIVATE_KEY);
	attrs[0] = (CK_ATTRIBUTE){CKA_PRIVATE_EXPONENT, sig3, sizeof sig3};
	CHECK(p11->C_GetAttributeValue(session, rsa, attrs, 1), CKR_ATTRIBUTE_SENSITIVE);
	ASSERT(attrs[0].ulValueLen == CK_UNAVAILABLE_INFORMATION);
	CHECK(p11->C_SignInit(session, &sha256_rsa, rsa), CKR_OK);
	len = sizeof sig2;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, sizeof message - 1, sig2, &len), CKR_OK);
	ASSERT(len == 256);
	CHECK(p11->C_SignInit(session, &sha256_rsa, rsa), CKR_OK);
	CHECK(p11->C_SignUpdate(session, (CK_BYTE_PTR)message, 3), CKR_OK);
	CHECK(p11->C_SignUpdate(session, (CK_BYTE_PTR)message + 3, sizeof message - 4), CKR_OK);
	/* single part after multi-part is not allowed */
	len = sizeof sig3;
	CHECK(p11->C_SignFinal(session, NULL, &len), CKR_OK);
	ASSERT(len == 256);
	len = 1;
	CHECK(p11->C_SignFinal(session, sig3, &len), CKR_BUFFER_TOO_SMALL);
	len = sizeof sig3;
	CHECK(p11->C_SignFinal(session, sig3, &len), CKR_OK);
	ASSERT(len == 256 && memcmp(sig2, sig3, 256) == 0);
	CHECK(p11->C_SignInit(session, &sha256_rsa, rsa), CKR_OK);
	CHECK(p11->C_SignUpdate(session, (CK_BYTE_PTR)message, 3), CKR_OK);
	len = sizeof sig3;
	CHECK(p11->C_Sign(session, (CK_BYTE_PTR)message, 3, sig3, &len),
	      CKR_OPERATION_NOT_INITIALIZED);
	/* Ed25519 cannot do RSA */
	CHECK(p11->C_SignInit(session, &sha256_rsa, priv), CKR_KEY_TYPE_INCONSISTENT);

	CHECK(p11->C_CloseSession(session), CKR_OK);
	CHECK(p11->C_CloseSession(session), CKR_SESSION_HANDLE_INVALID);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	CHECK(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	CHECK(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &session),
	      CKR_CRYPTOKI_NOT_INITIALIZED);
	/* and once more */
	init();
	session = open_session();
	CHECK(sign_ed25519(session, find_key(session, key_id, CKO_PRIVATE_KEY), sig2), CKR_OK);
	ASSERT(memcmp(sig, sig2, 64) == 0);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
}

#define N_THREADS 16
#define N_SIGNS	  25

static unsigned char reference[64];

static void *
thread_main(void *data)
{
	/* one session per thread, as applications do */
	CK_SESSION_HANDLE session = open_session();
	CK_OBJECT_HANDLE key = find_key(session, key_id, CKO_PRIVATE_KEY);

	for (int i = 0; i < N_SIGNS; i++) {
		unsigned char sig[64];
		CHECK(sign_ed25519(session, key, sig), CKR_OK);
		ASSERT(memcmp(sig, reference, 64) == 0);
	}
	CHECK(p11->C_CloseSession(session), CKR_OK);
	return NULL;
}

static void
test_threads(void)
{
	pthread_t threads[N_THREADS];
	CK_SESSION_HANDLE session;

	init();
	session = open_session();
	CHECK(sign_ed25519(session, find_key(session, key_id, CKO_PRIVATE_KEY), reference), CKR_OK);
	for (int i = 0; i < N_THREADS; i++)
		ASSERT(pthread_create(&threads[i], NULL, thread_main, NULL) == 0);
	for (int i = 0; i < N_THREADS; i++)
		ASSERT(pthread_join(threads[i], NULL) == 0);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("%d threads signed %d times each\n", N_THREADS, N_SIGNS);
}

static void
test_fork(void)
{
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE key;
	unsigned char sig[64];
	CK_ULONG count;
	int status;
	pid_t pid;

	init();
	session = open_session();
	key = find_key(session, key_id, CKO_PRIVATE_KEY);
	CHECK(sign_ed25519(session, key, reference), CKR_OK);
	pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		progname = "kmx-test-pkcs11 (child)";
		/* the parent's module state is not the child's */
		CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &count), CKR_CRYPTOKI_NOT_INITIALIZED);
		CHECK(sign_ed25519(session, key, sig), CKR_CRYPTOKI_NOT_INITIALIZED);
		init();
		session = open_session();
		CHECK(sign_ed25519(session, find_key(session, key_id, CKO_PRIVATE_KEY), sig),
		      CKR_OK);
		ASSERT(memcmp(sig, reference, 64) == 0);
		CHECK(p11->C_Finalize(NULL), CKR_OK);
		_exit(0);
	}
	ASSERT(waitpid(pid, &status, 0) == pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the parent's session is untouched */
	CHECK(sign_ed25519(session, key, sig), CKR_OK);
	ASSERT(memcmp(sig, reference, 64) == 0);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("fork: the child re-initialised and signed\n");
}

static CK_STATE
session_state(CK_SESSION_HANDLE session)
{
	CK_SESSION_INFO info;

	CHECK(p11->C_GetSessionInfo(session, &info), CKR_OK);
	return info.state;
}

/* a protected device, locked: PIN in $PIN */
static void
test_locked(void)
{
	const char *pin = getenv("PIN");
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE key;
	CK_TOKEN_INFO info;
	unsigned char sig[64];

	ASSERT(pin != NULL);
	init();
	CHECK(p11->C_GetTokenInfo(first_slot(), &info), CKR_OK);
	ASSERT(info.flags & CKF_LOGIN_REQUIRED);
	ASSERT(info.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
	session = open_session();
	ASSERT(session_state(session) == CKS_RO_PUBLIC_SESSION);
	/* listing works locked, using a key does not */
	key = find_key(session, key_id, CKO_PRIVATE_KEY);
	CHECK(sign_ed25519(session, key, sig), CKR_USER_NOT_LOGGED_IN);
	CHECK(p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "wrong", 5), CKR_PIN_INCORRECT);
	CHECK(p11->C_Login(session, CKU_SO, (CK_UTF8CHAR_PTR)pin, strlen(pin)),
	      CKR_USER_TYPE_INVALID);
	/* the protected path with nobody to ask */
	CHECK(p11->C_Login(session, CKU_USER, NULL, 0), CKR_FUNCTION_CANCELED);
	CHECK(p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR) "a\0b", 3), CKR_PIN_INVALID);
	ASSERT(session_state(session) == CKS_RO_PUBLIC_SESSION);
	CHECK(p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	ASSERT(session_state(session) == CKS_RO_USER_FUNCTIONS);
	CHECK(p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)),
	      CKR_USER_ALREADY_LOGGED_IN);
	CHECK(sign_ed25519(session, key, sig), CKR_OK);
	CHECK(p11->C_Logout(session), CKR_OK);
	ASSERT(session_state(session) == CKS_RO_PUBLIC_SESSION);
	CHECK(p11->C_Logout(session), CKR_USER_NOT_LOGGED_IN);
	CHECK(sign_ed25519(session, key, sig), CKR_USER_NOT_LOGGED_IN);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("locked: login, logout\n");
}

static void
wait_line(const char *say)
{
	char line[64];

	printf("%s\n", say);
	fflush(stdout);
	ASSERT(fgets(line, sizeof line, stdin) != NULL);
}

static void
test_restart(void)
{
	CK_SESSION_HANDLE session;
	CK_OBJECT_HANDLE key;
	unsigned char sig[64];
	CK_ULONG count = 0;
	CK_RV rv;

	init();
	session = open_session();
	key = find_key(session, key_id, CKO_PRIVATE_KEY);
	CHECK(sign_ed25519(session, key, reference), CKR_OK);
	wait_line("killed?");
	/* keymuxd is gone: the device is removed, no token, no hang */
	rv = sign_ed25519(session, key, sig);
	ASSERT(rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT);
	CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &count), CKR_OK);
	ASSERT(count == 0);
	CHECK(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &session),
	      CKR_TOKEN_NOT_PRESENT);
	wait_line("restarted?");
	/* back: the same slot, the same key */
	CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &count), CKR_OK);
	ASSERT(count == 1);
	CHECK(sign_ed25519(session, key, sig), CKR_OK);
	ASSERT(memcmp(sig, reference, 64) == 0);
	session = open_session();
	CHECK(sign_ed25519(session, find_key(session, key_id, CKO_PRIVATE_KEY), sig), CKR_OK);
	ASSERT(memcmp(sig, reference, 64) == 0);
	CHECK(p11->C_Finalize(NULL), CKR_OK);
	printf("recovered\n");
}

/* ---- slots and slot events, driven by the test script ---- */

static pthread_t waiter;
static CK_RV waiter_rv;
static CK_SLOT_ID waiter_slot;

static void *
waiter_main(void *data)
{
	waiter_rv = p11->C_WaitForSlotEvent(0, &waiter_slot, NULL);
	return NULL;
}

static void
say_event(const char *prefix, CK_RV rv, CK_SLOT_ID slot)
{
	if (rv == CKR_OK)
		printf("%sevent %lu\n", prefix, (unsigned long)slot);
	else if (rv == CKR_NO_EVENT)
		printf("%sno event\n", prefix);
	else if (rv == CKR_CRYPTOKI_NOT_INITIALIZED)
		printf("%snot initialized\n", prefix);
	else
		printf("%srv 0x%lx\n", prefix, (unsigned long)rv);
}

/* the slot of keymux device @device (its description: "keymux DEVICE"),
 * 0 if none is listed */
static CK_SLOT_ID
slot_of(const char *device)
{
	CK_SLOT_ID list[64];
	CK_ULONG count = 64;
	char want[65];

	ASSERT(strlen(device) <= 57);
	memset(want, ' ', 64);
	memcpy(want, "keymux ", 7);
	memcpy(want + 7, device, strlen(device));
	want[64] = '\0';
	CHECK(p11->C_GetSlotList(CK_FALSE, list, &count), CKR_OK);
	for (CK_ULONG i = 0; i < count; i++) {
		CK_SLOT_INFO info;

		CHECK(p11->C_GetSlotInfo(list[i], &info), CKR_OK);
		if (memcmp(info.slotDescription, want, 64) == 0)
			return list[i];
	}
	return 0;
}

/* private key objects labelled @label */
static CK_ULONG
count_labelled(CK_SESSION_HANDLE session, const char *label)
{
	CK_OBJECT_CLASS klass = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE templ[] = {
	    {CKA_CLASS, &klass, sizeof klass},
	    {CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_OBJECT_HANDLE found[8];
	CK_ULONG count = 0;

	CHECK(p11->C_FindObjectsInit(session, templ, 2), CKR_OK);
	CHECK(p11->C_FindObjects(session, found, 8, &count), CKR_OK);
	CHECK(p11->C_FindObjectsFinal(session), CKR_OK);
	return count;
}

static void
test_events(void)
{
	CK_SESSION_HANDLE session = 0;
	char line[256];

	progname = "kmx-test-pkcs11 events";
	while (fgets(line, sizeof line, stdin) != NULL) {
		char *arg = strchr(line, ' ');
		CK_SLOT_ID slot = 0;
		CK_RV rv;

		line[strcspn(line, "\n")] = '\0';
		if (arg != NULL)
			*arg++ = '\0';
		if (strcmp(line, "quit") == 0)
			break;
		if (strcmp(line, "init") == 0) {
			init();
			printf("ok\n");
		} else if (strcmp(line, "finalize") == 0) {
			CHECK(p11->C_Finalize(NULL), CKR_OK);
			printf("ok\n");
		} else if (strcmp(line, "slot") == 0 && arg != NULL) {
			printf("slot %lu\n", (unsigned long)slot_of(arg));
		} else if (strcmp(line, "present") == 0 && arg != NULL) {
			CK_SLOT_INFO info;
			CK_TOKEN_INFO token;

			slot = strtoul(arg, NULL, 10);
			CHECK(p11->C_GetSlotInfo(slot, &info), CKR_OK);
			/* the token agrees with the slot */
			rv = p11->C_GetTokenInfo(slot, &token);
			ASSERT(rv ==
			       ((info.flags & CKF_TOKEN_PRESENT) ? CKR_OK : CKR_TOKEN_NOT_PRESENT));
			printf("%s\n", (info.flags & CKF_TOKEN_PRESENT) ? "present" : "absent");
		} else if (strcmp(line, "count") == 0) {
			CK_ULONG count = 0;

			CHECK(p11->C_GetSlotList(CK_TRUE, NULL, &count), CKR_OK);
			printf("count %lu\n", (unsigned long)count);
		} else if (strcmp(line, "poll") == 0) {
			rv = p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL);
			say_event("", rv, slot);
		} else if (strcmp(line, "wait") == 0) {
			rv = p11->C_WaitForSlotEvent(0, &slot, NULL);
			say_event("", rv, slot);
		} else if (strcmp(line, "bgwait") == 0) {
			ASSERT(pthread_create(&waiter, NULL, waiter_main, NULL) == 0);
			printf("waiting\n");
		} else if (strcmp(line, "join") == 0) {
			ASSERT(pthread_join(waiter, NULL) == 0);
			say_event("bg ", waiter_rv, waiter_slot);
		} else if (strcmp(line, "bad") == 0) {
			CHECK(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL),
			      CKR_ARGUMENTS_BAD);
			CHECK(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, &slot),
			      CKR_ARGUMENTS_BAD);
			printf("ok\n");
		} else if (strcmp(line, "session") == 0 && arg != NULL) {
			slot = strtoul(arg, NULL, 10);
			CHECK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &session),
			      CKR_OK);
			printf("ok\n");
		} else if (strcmp(line, "state") == 0) {
			CK_STATE state = session_state(session);
			printf("%s\n", state == CKS_RO_PUBLIC_SESSION ? "public" : "user");
		} else if (strcmp(line, "login-required") == 0 && arg != NULL) {
			CK_TOKEN_INFO token;

			CHECK(p11->C_GetTokenInfo(strtoul(arg, NULL, 10), &token), CKR_OK);
			printf("%s\n", (token.flags & CKF_LOGIN_REQUIRED) ? "yes" : "no");
		} else if (strcmp(line, "find") == 0 && arg != NULL) {
			printf("found %lu\n", (unsigned long)count_labelled(session, arg));
		} else {
			fprintf(stderr, "%s: unknown command '%s'\n", progname, line);
			exit(2);
		}
		fflush(stdout);
	}
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[2], "events") == 0) {
		load(argv[1]);
		test_events();
		return 0;
	}
	if (argc < 4) {
		fprintf(stderr,
			"usage: %s MODULE rules|threads|fork|locked|restart KEYID [OUT]\n",
			progname);
		return 2;
	}
	load(argv[1]);
	parse_id(argv[3], key_id);
	if (strcmp(argv[2], "rules") == 0 && argc == 5) {
		parse_id(getenv("RSAKEYID"), rsa_id);
		test_rules(argv[4]);
	} else if (strcmp(argv[2], "threads") == 0) {
		test_threads();
	} else if (strcmp(argv[2], "fork") == 0) {
		test_fork();
	} else if (strcmp(argv[2], "locked") == 0) {
		test_locked();
	} else if (strcmp(argv[2], "restart") == 0) {
		test_restart();
	} else {
		fprintf(stderr, "%s: unknown test %s\n", progname, argv[2]);
		return 2;
	}
	return 0;
}
