/*
 * A PKCS#11 module with the shape of a USB or network HSM, for scripts/bench:
 * it loads a real module (LATENCY_PKCS11_MODULE, default SoftHSM), forwards
 * every call to it, and makes each signing operation, from its C_SignInit to
 * the C_Sign or C_SignFinal that returns the signature, last a fixed time
 * (LATENCY_PKCS11_MS, default 5). The calling thread sleeps for the rest of
 * it, so the host pays only the real module's work (SoftHSM's ~50 us) and
 * sessions sign in parallel, each sleeping on its own, as a device with
 * several signing units would.
 *
 * Build: cc -shared -fPIC -O2 -I/usr/include/p11-kit-1 -o latency-pkcs11.so \
 *        latency-pkcs11.c -ldl
 *
 * Only the PKCS#11 2.40 entry point is exported (C_GetFunctionList): a
 * caller that looks for C_GetInterface falls back to it, and SoftHSM 2.6 has
 * no 3.0 interface to pass on anyway.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST real;    /* the real module's list, copied */
static CK_FUNCTION_LIST wrapped; /* the list handed out: real's, two entries replaced */
static CK_RV load_rv = CKR_GENERAL_ERROR;
static long latency_ns = 5L * 1000 * 1000;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Sleeps until `start` + the latency (absolute, so the real call's own time
 * counts in it), resuming after a signal. The calling thread's timer slack
 * goes to 1 ns first: with the default 50 us the sleep ends 1-2 % late, and
 * the latency is meant to be the one the bench names. */
static void wait_latency(const struct timespec *start) {
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  struct timespec until = *start;
  until.tv_sec += latency_ns / 1000000000L;
  until.tv_nsec += latency_ns % 1000000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec += 1;
    until.tv_nsec -= 1000000000L;
  }
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
  }
}

/* When this thread's signing operation began (its C_SignInit): the latency
 * is that of the whole operation, as a device's round trips are. A session
 * serves one thread at a time, and a caller initialises and signs on the
 * same thread. */
static __thread struct timespec op_start;
static __thread int op_started;

static CK_RV shim_sign_init(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                            CK_OBJECT_HANDLE key) {
  clock_gettime(CLOCK_MONOTONIC, &op_start);
  CK_RV rv = real.C_SignInit(session, mechanism, key);
  op_started = rv == CKR_OK;
  return rv;
}

/* After a call that may have produced a signature: without a buffer, or
 * with one too small, the caller only learns the size and calls again (the
 * operation goes on), so only the call that signs takes the device's time
 * (from the operation's start, or from this call's when the operation began
 * on another thread). */
static void after_sign(CK_RV rv, CK_BYTE_PTR signature, const struct timespec *call_start) {
  if ((signature == NULL && rv == CKR_OK) || rv == CKR_BUFFER_TOO_SMALL) {
    return;
  }
  if (rv == CKR_OK) {
    wait_latency(op_started ? &op_start : call_start);
  }
  op_started = 0;
}

static CK_RV shim_sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                       CK_BYTE_PTR signature, CK_ULONG_PTR signature_len) {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  CK_RV rv = real.C_Sign(session, data, data_len, signature, signature_len);
  after_sign(rv, signature, &start);
  return rv;
}

static CK_RV shim_sign_final(CK_SESSION_HANDLE session, CK_BYTE_PTR signature,
                             CK_ULONG_PTR signature_len) {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  CK_RV rv = real.C_SignFinal(session, signature, signature_len);
  after_sign(rv, signature, &start);
  return rv;
}

static CK_RV shim_get_function_list(CK_FUNCTION_LIST_PTR_PTR list);

static void load(void) {
  const char *path = getenv("LATENCY_PKCS11_MODULE");
  if (path == NULL || *path == '\0') {
    path = "/usr/lib/softhsm/libsofthsm2.so";
  }
  const char *ms = getenv("LATENCY_PKCS11_MS");
  if (ms != NULL && *ms != '\0') {
    char *end = NULL;
    double v = strtod(ms, &end);
    if (end == ms || *end != '\0' || v < 0 || v > 60000) {
      fprintf(stderr, "latency-pkcs11: LATENCY_PKCS11_MS=%s is not a number of milliseconds\n", ms);
      return;
    }
    latency_ns = (long)(v * 1e6);
  }
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "latency-pkcs11: cannot load %s: %s\n", path, dlerror());
    return;
  }
  CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  CK_FUNCTION_LIST_PTR list = NULL;
  if (get == NULL || get(&list) != CKR_OK || list == NULL) {
    fprintf(stderr, "latency-pkcs11: %s gives no PKCS#11 function list\n", path);
    return;
  }
  memcpy(&real, list, sizeof real);
  memcpy(&wrapped, list, sizeof wrapped);
  wrapped.C_GetFunctionList = shim_get_function_list;
  wrapped.C_SignInit = shim_sign_init;
  wrapped.C_Sign = shim_sign;
  wrapped.C_SignFinal = shim_sign_final;
  load_rv = CKR_OK;
}

static CK_RV shim_get_function_list(CK_FUNCTION_LIST_PTR_PTR list) {
  if (list == NULL) {
    return CKR_ARGUMENTS_BAD;
  }
  pthread_once(&once, load);
  if (load_rv != CKR_OK) {
    return load_rv;
  }
  *list = &wrapped;
  return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) { return shim_get_function_list(list); }
