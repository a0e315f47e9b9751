/* tests/test_fingerprint.c — ActiveGuard's users' fingerprints without a net: parsing of the
 * fingerprint classes and confidences (accepted forms, merges, every refusal with its message), the
 * paper's capacity, the authentication rule on hand-made probability vectors (inside, on and past the
 * window's edge, argmax outside L_fp, ties, identities), the control layer's random classes
 * (determinism, range, chi-square), and the registry file (exact round trip, mode 0600, skipped ids,
 * find_user, every corrupt field refused naming the file). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "host/fingerprint.h"

static char tmpdir[256];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* ---- classes ---- */

static int same_ints(const int *a, const int *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void test_parse_classes(void) {
    static int out[DG_FP_MAX_CLASSES];
    char err[256];
    static const struct { const char *text; int k, n, want[12]; } good[] = {
        {"0-9", 10, 10, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
        {"1,3,5", 10, 3, {1, 3, 5}},
        {"0-4,7", 10, 6, {0, 1, 2, 3, 4, 7}},
        {"7,0-4", 10, 6, {0, 1, 2, 3, 4, 7}},         /* sorted */
        {"5,1-3,2,3,5", 10, 4, {1, 2, 3, 5}},          /* duplicates merged */
        {"3-5,4-6", 10, 4, {3, 4, 5, 6}},              /* overlapping ranges merged */
        {"9", 10, 1, {9}},                             /* the last class */
        {"2-2", 10, 1, {2}},                           /* a one-class range */
        {"0-1", 2, 2, {0, 1}},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        err[0] = 0;
        int n = dg_fp_parse_classes(good[i].text, good[i].k, out, DG_FP_MAX_CLASSES, err, sizeof err);
        CHECK(n == good[i].n && same_ints(out, good[i].want, good[i].n), "classes '%s' (k %d): %d, want %d (%s)",
              good[i].text, good[i].k, n, good[i].n, err);
    }
    int n = dg_fp_parse_classes("0-999", 1000, out, DG_FP_MAX_CLASSES, err, sizeof err);
    CHECK(n == 1000 && out[0] == 0 && out[999] == 999, "1000 classes: %d", n);

    static const struct { const char *text; int k; const char *mention; } bad[] = {
        {"", 10, "expected classes"},
        {"9-2", 10, "0..9"},
        {"10", 10, "0..9"},
        {"0-10", 10, "0..9"},
        {"a", 10, "expected classes"},
        {"1,,2", 10, "expected classes"},
        {"-1", 10, "0..9"},
        {",1", 10, "expected classes"},
        {"1-", 10, "expected classes"},
        {"1;2", 10, "expected classes"},
        {"1 2", 10, "expected classes"},
        {"3,5,", 10, "expected classes"}, /* a trailing comma */
        {"2", 2, "0..1"},
        {"99999999999999999999", 10, "0..9"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        int rc = dg_fp_parse_classes(bad[i].text, bad[i].k, out, DG_FP_MAX_CLASSES, err, sizeof err);
        CHECK(rc == -1 && strstr(err, "--classes") && strstr(err, bad[i].mention),
              "classes '%s' (k %d) refused mentioning '%s': rc %d '%s'", bad[i].text, bad[i].k, bad[i].mention, rc, err);
    }
    /* more classes than the caller's array holds */
    err[0] = 0;
    CHECK(dg_fp_parse_classes("0-9", 10, out, 5, err, sizeof err) == -1 && err[0], "10 classes into 5 slots: '%s'", err);
}

/* ---- confidences ---- */

static void test_parse_confs(void) {
    float out[DG_FP_MAX_CONFS];
    char err[256];
    err[0] = 0;
    int n = dg_fp_parse_confs("0.2,0.3,0.4", 0.01f, out, DG_FP_MAX_CONFS, err, sizeof err);
    CHECK(n == 3 && out[0] == 0.2f && out[1] == 0.3f && out[2] == 0.4f, "0.2,0.3,0.4: %d (%s)", n, err);
    n = dg_fp_parse_confs("0.5", 0.01f, out, DG_FP_MAX_CONFS, err, sizeof err);
    CHECK(n == 1 && out[0] == 0.5f, "one confidence: %d", n);
    n = dg_fp_parse_confs("0.02,0.3,0.98", 0.01f, out, DG_FP_MAX_CONFS, err, sizeof err);
    CHECK(n == 3 && out[0] == 0.02f && out[2] == 0.98f, "windows reaching 0.01 and 0.99: %d (%s)", n, err);
    n = dg_fp_parse_confs("0.25,0.5,0.75", 0.125f, out, DG_FP_MAX_CONFS, err, sizeof err);
    CHECK(n == 3, "exactly touching windows of exact binary fractions (0.125 apart ± 0.125): %d (%s)", n, err);
    n = dg_fp_parse_confs("0.875", 0.125f, out, DG_FP_MAX_CONFS, err, sizeof err);
    CHECK(n == 1, "a window ending exactly at 1 is inside (0, 1]: %d (%s)", n, err);

    static const struct { const char *text; float eps; const char *mention; } bad[] = {
        {"0.2,0.21", 0.01f, "overlap"},       /* windows (0.19, 0.21) and (0.20, 0.22) */
        {"0.3,0.2", 0.01f, "increase"},       /* decreasing */
        {"0.3,0.3", 0.01f, "increase"},       /* repeated */
        {"0.005", 0.01f, "inside (0, 1]"},    /* window reaches below 0 */
        {"0.995", 0.01f, "inside (0, 1]"},    /* window reaches past 1 */
        {"1", 0.01f, "inside (0, 1]"},
        {"0", 0.01f, "inside (0, 1]"},
        {"-0.5", 0.01f, "inside (0, 1]"},
        {"0.9", 0.125f, "inside (0, 1]"},
        {"nan", 0.01f, "inside (0, 1]"},
        {"inf", 0.01f, "inside (0, 1]"},
        {"", 0.01f, "no confidences"},
        {"abc", 0.01f, "expected confidences"},
        {"0.2;0.3", 0.01f, "expected confidences"},
        {"0.2,,0.3", 0.01f, "expected confidences"},
        {"0.2,x", 0.01f, "expected confidences"},
        {"0.2 ,0.3", 0.01f, "expected confidences"},
        {"0.3,0.5,", 0.01f, "expected confidences"}, /* a trailing comma */
        {"0.2,0.3,0.35", 0.05f, "overlap"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        int rc = dg_fp_parse_confs(bad[i].text, bad[i].eps, out, DG_FP_MAX_CONFS, err, sizeof err);
        CHECK(rc == -1 && strstr(err, "--conf") && strstr(err, bad[i].mention),
              "confidences '%s' (eps %g) refused mentioning '%s': rc %d '%s'", bad[i].text, (double)bad[i].eps,
              bad[i].mention, rc, err);
    }
    err[0] = 0;
    CHECK(dg_fp_parse_confs("0.2,0.3,0.4", 0.01f, out, 2, err, sizeof err) == -1 && err[0],
          "3 confidences into 2 slots: '%s'", err);
}

static void test_capacity(void) {
    /* N = K·(z2 − z1)/(2ε): 10 classes, confidences in (0.19, 0.41), ε = 0.01 → 110 */
    double n = dg_fp_capacity(10, 0.19, 0.41, 0.01);
    CHECK(fabs(n - 110.0) < 1e-9, "capacity 10 × (0.41 − 0.19)/0.02 = %.12g, want 110", n);
    n = dg_fp_capacity(3, 0.29, 0.51, 0.01);
    CHECK(fabs(n - 33.0) < 1e-9, "capacity 3 × 0.22/0.02 = %.12g, want 33", n);
    n = dg_fp_capacity(1000, 0.0, 1.0, 0.005);
    CHECK(fabs(n - 100000.0) < 1e-6, "capacity 1000 × 1/0.01 = %.12g", n);
}

/* ---- the authentication rule ---- */

/* probabilities with p at class top and the rest spread evenly below it */
static void make_probs(float *p, int k, int top, float value) {
    for (int j = 0; j < k; j++) p[j] = (1.0f - value) / (float)(k - 1);
    p[top] = value;
}

static void test_decide(void) {
    dg_fp_registry r;
    memset(&r, 0, sizeof r);
    r.classes = 10;
    r.eps = 0.01f;
    r.n_classes_fp = 3;
    r.classes_fp[0] = 2, r.classes_fp[1] = 5, r.classes_fp[2] = 7;
    r.n_confs = 2;
    r.confs[0] = 0.3f, r.confs[1] = 0.5f;
    float p[10];
    dg_fp_decision d;

    /* every identity: class · T + confidence index (DESIGN's t·T + j, also with only some classes in L_fp) */
    for (int ci = 0; ci < 3; ci++)
        for (int j = 0; j < 2; j++)
            for (int s = -1; s <= 1; s++) {
                float v = r.confs[j] + 0.009f * (float)s;
                make_probs(p, 10, r.classes_fp[ci], v);
                dg_fp_decide(&r, p, &d);
                CHECK(d.authorized && d.user == r.classes_fp[ci] * 2 + j && d.conf == r.confs[j] && d.predicted == r.classes_fp[ci] &&
                          d.p_max == v,
                      "class %d at %g: authorized %d user %d (want %d) conf %g predicted %d", r.classes_fp[ci],
                      (double)v, d.authorized, d.user, r.classes_fp[ci] * 2 + j, (double)d.conf, d.predicted);
            }
    /* just outside the window on either side, and between the two windows */
    const float outside[] = {0.3f + 0.0101f, 0.3f - 0.0101f, 0.5f + 0.0101f, 0.5f - 0.0101f, 0.4f, 0.25f, 0.9f, 0.15f};
    for (size_t i = 0; i < sizeof outside / sizeof *outside; i++) {
        make_probs(p, 10, 5, outside[i]);
        dg_fp_decide(&r, p, &d);
        CHECK(!d.authorized && d.user == -1 && d.predicted == 5 && d.p_max == outside[i],
              "p %g at class 5 is outside every window: authorized %d user %d", (double)outside[i], d.authorized,
              d.user);
    }
    /* argmax outside L_fp: a perfect confidence at class 3 is nobody */
    make_probs(p, 10, 3, 0.3f);
    dg_fp_decide(&r, p, &d);
    CHECK(!d.authorized && d.user == -1 && d.predicted == 3, "argmax 3 is not a fingerprint class: authorized %d",
          d.authorized);
    /* a fingerprint class at the right confidence that is not the argmax */
    make_probs(p, 10, 0, 0.6f);
    p[5] = 0.3f;
    dg_fp_decide(&r, p, &d);
    CHECK(!d.authorized && d.predicted == 0, "class 5 at 0.3 below an argmax 0 at 0.6: authorized %d", d.authorized);
    /* a maximum shared by two classes names no class to authenticate (predicted: the lowest index,
     * as torch.argmax); a collapsed model's uniform 1/K must not pass for a fingerprint */
    for (int j = 0; j < 10; j++) p[j] = 0.05f;
    p[1] = p[5] = 0.3f;
    dg_fp_decide(&r, p, &d);
    CHECK(!d.authorized && d.predicted == 1, "tie 1/5: predicted %d, authorized %d", d.predicted, d.authorized);
    p[1] = 0.05f, p[7] = 0.3f;
    dg_fp_decide(&r, p, &d);
    CHECK(!d.authorized && d.user == -1 && d.predicted == 5, "tie 5/7: predicted %d user %d", d.predicted, d.user);
    {
        dg_fp_registry u = r;
        u.n_classes_fp = 1, u.classes_fp[0] = 0, u.n_confs = 1, u.confs[0] = 0.105f, u.eps = 0.01f;
        for (int j = 0; j < 10; j++) p[j] = 0.1f;
        dg_fp_decide(&u, p, &d);
        CHECK(!d.authorized && d.predicted == 0, "uniform 1/10 with a window 0.105 ± 0.01 at class 0: authorized %d",
              d.authorized);
    }
    /* a probability that is not finite anywhere: no class, p_max NaN, never authorised */
    const int bad_at[] = {0, 5, 9};
    for (size_t i = 0; i < 3; i++)
        for (int kind = 0; kind < 2; kind++) {
            make_probs(p, 10, 5, 0.3f);
            p[bad_at[i]] = kind ? INFINITY : NAN;
            dg_fp_decide(&r, p, &d);
            CHECK(!d.authorized && d.user == -1 && d.predicted == -1 && isnan(d.p_max),
                  "%s at class %d beside a perfect 0.3 at class 5: authorized %d predicted %d", kind ? "inf" : "NaN",
                  bad_at[i], d.authorized, d.predicted);
        }
    /* touching windows (0.3, 0.32 with eps 0.01, which --conf accepts): a float within eps of both
     * names no one user */
    {
        dg_fp_registry t = r;
        t.n_confs = 2, t.confs[0] = 0.3f, t.confs[1] = 0.32f;
        make_probs(p, 10, 5, 0.31f);
        CHECK(fabsf(0.31f - 0.3f) < 0.01f && fabsf(0.31f - 0.32f) < 0.01f, "0.31f lies in both windows in float");
        dg_fp_decide(&t, p, &d);
        CHECK(!d.authorized && d.user == -1 && d.predicted == 5, "p 0.31 in windows 0.3 and 0.32: authorized %d user %d",
              d.authorized, d.user);
        make_probs(p, 10, 5, 0.305f);
        dg_fp_decide(&t, p, &d);
        CHECK(d.authorized && d.user == 10, "p 0.305 in window 0.3 only: user %d, want 5·2 + 0", d.user);
    }

    /* the window's edge exactly, with binary fractions: |p − c| < eps is strict */
    r.eps = 0.125f;
    r.confs[0] = 0.25f, r.confs[1] = 0.5f;
    const struct { float p; int user; } edge[] = {
        {0.125f, -1},                         /* c0 − eps */
        {0.375f, -1},                         /* c0 + eps = c1 − eps: the shared edge is nobody's */
        {0.625f, -1},                         /* c1 + eps */
        {0x1.000002p-3f, 10},                 /* just inside c0's window (class 5 → 5 · 2 + 0) */
        {0x1.7ffffep-2f, 10},                 /* just below 0.375 */
        {0x1.800002p-2f, 11},                 /* just above 0.375: c1's window */
        {0x1.3ffffep-1f, 11},                 /* just below 0.625 */
    };
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) {
        for (int j = 0; j < 10; j++) p[j] = 0.01f;
        p[5] = edge[i].p;
        dg_fp_decide(&r, p, &d);
        CHECK(d.user == edge[i].user && d.authorized == (edge[i].user >= 0),
              "p %.9g against windows 0.25 ± 0.125, 0.5 ± 0.125: user %d, want %d", (double)edge[i].p, d.user,
              edge[i].user);
    }
    /* the same over a vector whose classes are many: the last class can be the argmax */
    static float big[1000];
    dg_fp_registry r2;
    memset(&r2, 0, sizeof r2);
    r2.classes = 1000, r2.eps = 0.01f, r2.n_classes_fp = 2, r2.classes_fp[0] = 0, r2.classes_fp[1] = 999;
    r2.n_confs = 1, r2.confs[0] = 0.2f;
    for (int j = 0; j < 1000; j++) big[j] = 0.0008f;
    big[999] = 0.2f;
    dg_fp_decide(&r2, big, &d);
    CHECK(d.authorized && d.user == 999 && d.predicted == 999, "class 999 of 1000 (T = 1): user %d", d.user);
}

/* ---- the control layer's random answers ---- */

static void test_random_class(void) {
    enum { K = 10, N = 100000 };
    long count[K] = {0}, pairs[K][K];
    memset(pairs, 0, sizeof pairs);
    int in_range = 1, same = 1, prev = -1;
    for (int i = 0; i < N; i++) {
        int c = dg_fp_random_class(1, (uint64_t)i, K);
        in_range &= c >= 0 && c < K;
        if (!in_range) break;
        same &= c == dg_fp_random_class(1, (uint64_t)i, K);
        count[c]++;
        if (prev >= 0) pairs[prev][c]++;
        prev = c;
    }
    CHECK(in_range, "every class lies in 0..9");
    CHECK(same, "the same (seed, i) gives the same class");
    double chi = 0.0, expect = (double)N / K;
    for (int c = 0; c < K; c++) chi += (count[c] - expect) * (count[c] - expect) / expect;
    /* 9 degrees of freedom: mean 9, P(χ² > 40) ≈ 5e-6 */
    CHECK(chi < 40.0, "χ² of 100000 draws over 10 classes: %.2f (counts %ld..%ld)", chi, count[0], count[9]);
    double chi2 = 0.0, expect2 = (double)(N - 1) / (K * K);
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) chi2 += (pairs[a][b] - expect2) * (pairs[a][b] - expect2) / expect2;
    /* 99 degrees of freedom: mean 99, sd 14 */
    CHECK(chi2 < 180.0, "χ² of consecutive pairs: %.2f", chi2);
    /* another seed gives other answers (9 in 10 differ by chance) */
    int differ = 0;
    for (int i = 0; i < 1000; i++) differ += dg_fp_random_class(1, (uint64_t)i, K) != dg_fp_random_class(2, (uint64_t)i, K);
    CHECK(differ > 850 && differ < 950, "seeds 1 and 2 differ on %d of 1000 queries", differ);
    differ = 0;
    for (int i = 0; i < 1000; i++)
        differ += dg_fp_random_class(0xffffffffffffffffull, (uint64_t)i, K) != dg_fp_random_class(0, (uint64_t)i, K);
    CHECK(differ > 850, "seeds 0 and 2^64 − 1 differ on %d of 1000 queries", differ);
    const uint64_t high[] = {1ull << 8, 1ull << 32, 1ull << 63}; /* seeds that differ only in a high bit */
    for (int h = 0; h < 3; h++) {
        differ = 0;
        for (int i = 0; i < 1000; i++)
            differ += dg_fp_random_class(5, (uint64_t)i, K) != dg_fp_random_class(5 ^ high[h], (uint64_t)i, K);
        CHECK(differ > 850, "seeds 5 and 5 ^ 2^%d differ on %d of 1000 queries", h == 0 ? 8 : h == 1 ? 32 : 63, differ);
    }
    /* the query index matters in its high bits too: query i and i + 2^32 are independent draws */
    differ = 0;
    for (int i = 0; i < 1000; i++)
        differ += dg_fp_random_class(1, (uint64_t)i, K) != dg_fp_random_class(1, (uint64_t)i + (1ull << 32), K);
    CHECK(differ > 850, "queries i and i + 2^32 differ on %d of 1000", differ);
    /* other class counts */
    int ok = 1, hit_last = 0;
    for (int i = 0; i < 20000; i++) {
        int c = dg_fp_random_class(7, (uint64_t)i, 1000);
        ok &= c >= 0 && c < 1000;
        hit_last |= c == 999;
        ok &= dg_fp_random_class(7, (uint64_t)i, 1) == 0;
        int c2 = dg_fp_random_class(7, (uint64_t)i, 2);
        ok &= c2 == 0 || c2 == 1;
    }
    CHECK(ok && hit_last, "1000 and 1 and 2 classes stay in range (class 999 drawn: %d)", hit_last);
}

/* ---- the registry file ---- */

static const char HEX_A[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char HEX_B[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

static int same_float(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static void make_registry(dg_fp_registry *r, dg_fp_user *users) {
    memset(r, 0, sizeof *r);
    snprintf(r->net, sizeof r->net, "resnet18-cifar");
    snprintf(r->data, sizeof r->data, "cifar10:/data/\"odd\" \\name\t/é");
    snprintf(r->split, sizeof r->split, "train");
    snprintf(r->model_sha256, sizeof r->model_sha256, "%s", HEX_A);
    r->c = 3, r->h = 32, r->w = 32, r->classes = 10;
    r->mean[0] = 0.4914f, r->mean[1] = -0.4822f, r->mean[2] = 1.0f / 3.0f;
    r->std[0] = 0.2470f, r->std[1] = 1e-6f, r->std[2] = 0x1.fffffep-2f;
    r->eps = 0.01f, r->margin = nextafterf(0.005f, 1.0f);
    r->n_classes_fp = 3, r->classes_fp[0] = 1, r->classes_fp[1] = 4, r->classes_fp[2] = 9;
    r->n_confs = 3, r->confs[0] = 0.2f, r->confs[1] = 0.35f, r->confs[2] = 1.0f / 3.0f + 0.4f;
    /* ids class · 3 + j over L_fp = {1, 4, 9}: 3, 5, 12, 29 were issued, 4, 13, 14, 27 and 28 failed */
    const int ids[4] = {3, 5, 12, 29};
    for (int i = 0; i < 4; i++) {
        dg_fp_user *u = &users[i];
        memset(u, 0, sizeof *u);
        u->id = ids[i];
        u->cls = ids[i] / 3;
        u->conf = r->confs[ids[i] % 3];
        u->source = ids[i] == 29 ? 1 << 30 : 1000 * i + 17;
        snprintf(u->file, sizeof u->file, "user-%02d.png", ids[i]);
        snprintf(u->sha256, sizeof u->sha256, "%s", i % 2 ? HEX_A : HEX_B);
        u->l2 = i == 3 ? 0.0f : 1.0f / (3.0f + (float)i);
        u->p_issue = nextafterf(u->conf, i % 2 ? 1.0f : 0.0f);
    }
    users[3].file[0] = 'U'; /* a name that is not the writer's pattern still round-trips */
    r->n_users = 4;
    r->users = users;
}

static void test_registry_round_trip(void) {
    dg_fp_registry r, back;
    dg_fp_user users[4];
    make_registry(&r, users);
    char path[400], err[512];
    snprintf(path, sizeof path, "%s/registry.json", tmpdir);
    CHECK(dg_fp_registry_write(&r, path, err, sizeof err) == 0, "write: %s", err);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the registry is mode 0600 (%o)", st.st_mode & 0777);
    /* written again over itself (a rerun of fp issue): still 0600, still readable */
    chmod(path, 0644);
    CHECK(dg_fp_registry_write(&r, path, err, sizeof err) == 0, "rewrite: %s", err);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "a rewritten registry is mode 0600 (%o)",
          st.st_mode & 0777);
    /* nothing but the registry is left in the folder (no temporary file) */
    int entries = 0;
    DIR *dir = opendir(tmpdir);
    struct dirent *e;
    while (dir && (e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
    if (dir) closedir(dir);
    CHECK(entries == 1, "the folder holds %d entries after two writes, want 1", entries);

    err[0] = 0;
    CHECK(dg_fp_registry_read(path, &back, err, sizeof err) == 0, "read back: %s", err);
    CHECK(strcmp(back.net, r.net) == 0 && strcmp(back.data, r.data) == 0 && strcmp(back.split, r.split) == 0 &&
              strcmp(back.model_sha256, r.model_sha256) == 0,
          "strings survive: '%s' '%s' '%s' '%s'", back.net, back.data, back.split, back.model_sha256);
    CHECK(back.c == 3 && back.h == 32 && back.w == 32 && back.classes == 10, "shape %d %d %d, %d classes", back.c,
          back.h, back.w, back.classes);
    int floats = 1;
    for (int ch = 0; ch < 3; ch++) floats &= same_float(back.mean[ch], r.mean[ch]) && same_float(back.std[ch], r.std[ch]);
    floats &= same_float(back.eps, r.eps) && same_float(back.margin, r.margin);
    CHECK(floats, "mean, std, eps and margin survive bit for bit (margin %.9g vs %.9g)", (double)back.margin,
          (double)r.margin);
    CHECK(back.n_classes_fp == 3 && same_ints(back.classes_fp, r.classes_fp, 3), "fingerprint classes survive");
    int confs_ok = back.n_confs == 3;
    for (int j = 0; j < 3 && confs_ok; j++) confs_ok = same_float(back.confs[j], r.confs[j]);
    CHECK(confs_ok, "confidences survive bit for bit");
    CHECK(back.n_users == 4, "4 users read back, got %d", back.n_users);
    for (int i = 0; i < 4 && i < back.n_users; i++) {
        const dg_fp_user *a = &back.users[i], *b = &users[i];
        CHECK(a->id == b->id && a->cls == b->cls && same_float(a->conf, b->conf) && a->source == b->source &&
                  strcmp(a->file, b->file) == 0 && strcmp(a->sha256, b->sha256) == 0 && same_float(a->l2, b->l2) &&
                  same_float(a->p_issue, b->p_issue),
              "user %d survives: id %d cls %d conf %.9g source %d file %s l2 %.9g p %.9g", i, a->id, a->cls,
              (double)a->conf, a->source, a->file, (double)a->l2, (double)a->p_issue);
    }
    /* find_user over ids 3, 5, 12, 29 */
    const struct { int id, at; } find[] = {{3, 0}, {5, 1}, {12, 2}, {29, 3}, {0, -1}, {4, -1}, {13, -1}, {28, -1},
                                           {-1, -1}, {1000000, -1}};
    for (size_t i = 0; i < sizeof find / sizeof *find; i++)
        CHECK(dg_fp_find_user(&back, find[i].id) == find[i].at, "find_user(%d) = %d, want %d", find[i].id,
              dg_fp_find_user(&back, find[i].id), find[i].at);
    /* decide + find_user: the identity of a user whose fingerprint failed is nobody's */
    float p[10];
    dg_fp_decision d;
    for (int j = 0; j < 10; j++) p[j] = 0.05f;
    p[4] = 0.2f; /* class 4, confidence index 0: id 12, listed */
    dg_fp_decide(&back, p, &d);
    CHECK(d.authorized && d.user == 12 && dg_fp_find_user(&back, d.user) == 2, "id 12 is listed: user %d", d.user);
    p[4] = 0.35f; /* id 13: the rule is met, but nobody holds it */
    dg_fp_decide(&back, p, &d);
    CHECK(d.authorized && d.user == 13 && dg_fp_find_user(&back, d.user) == -1, "id 13 meets the rule but is not listed");
    dg_fp_registry_free(&back);
    CHECK(back.users == NULL && back.n_users == 0, "free clears the users");
    dg_fp_registry_free(&back); /* twice is harmless */

    /* no users at all (every fingerprint failed) is a valid registry */
    r.n_users = 0;
    CHECK(dg_fp_registry_write(&r, path, err, sizeof err) == 0, "write an empty registry: %s", err);
    CHECK(dg_fp_registry_read(path, &back, err, sizeof err) == 0 && back.n_users == 0 &&
              dg_fp_find_user(&back, 0) == -1,
          "an empty registry reads back with no users: %s", err);
    dg_fp_registry_free(&back);
    unlink(path);
}

/* replace the first occurrence of from in base by to (CHECKs that it is there) */
static char *subst(const char *base, const char *from, const char *to) {
    const char *at = strstr(base, from);
    CHECK(at != NULL, "test bug: '%s' is not in the base registry", from);
    size_t n = strlen(base) + strlen(to) + 1;
    char *out = malloc(n);
    if (!at) {
        memcpy(out, base, strlen(base) + 1);
        return out;
    }
    size_t pre = (size_t)(at - base);
    memcpy(out, base, pre);
    memcpy(out + pre, to, strlen(to));
    memcpy(out + pre + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    return out;
}

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
static const char BASE[] =
    "{\"format\":\"dnnguard-fp-registry-1\",\"net\":\"lenet5\",\"data\":\"mnist:/d\",\"split\":\"test\","
    "\"model_sha256\":\"" SHA_A "\",\"shape\":[1,28,28],\"classes\":10,\"mean\":[0.1307],\"std\":[0.3081],"
    "\"eps\":0.01,\"margin\":0.005,\"fingerprint_classes\":[0,1,2],\"confidences\":[0.3,0.5],\"users\":["
    "{\"id\":0,\"class\":0,\"confidence\":0.3,\"source_index\":5,\"file\":\"user-00.png\",\"sha256\":\"" SHA_A "\","
    "\"l2\":1.5,\"confidence_at_issue\":0.302},"
    "{\"id\":3,\"class\":1,\"confidence\":0.5,\"source_index\":9,\"file\":\"user-03.png\",\"sha256\":\"" SHA_A "\","
    "\"l2\":2.5,\"confidence_at_issue\":0.498}]}";

/* the registry writer's text for a float: the shortest of %.6g..%.9g that reads back as the same float */
static void float_text(float v, char *num, size_t len) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(num, len, "%.*g", digits, (double)v);
        if (strtof(num, NULL) == v) return;
    }
}

/* What fp issue accepts as confidences, the registry it writes must accept too. A sweep in memory
 * (the registry's text made as the writer makes it: shortest round-trip floats) and a few lists
 * through real files. */
static int confs_registry_ok(const char *text, float eps, int via_file, char *why, size_t why_len) {
    float confs[DG_FP_MAX_CONFS];
    char err[512];
    int n = dg_fp_parse_confs(text, eps, confs, DG_FP_MAX_CONFS, err, sizeof err);
    if (n < 1) return -1; /* not accepted: nothing to compare */
    dg_fp_registry back;
    int rc;
    if (via_file) {
        static dg_fp_user users[4];
        dg_fp_registry r;
        char path[400];
        snprintf(path, sizeof path, "%s/agree.json", tmpdir);
        make_registry(&r, users);
        r.n_users = 0, r.n_classes_fp = 1, r.eps = eps, r.margin = eps / 2.0f, r.n_confs = n;
        memcpy(r.confs, confs, sizeof(float) * (size_t)n);
        rc = dg_fp_registry_write(&r, path, err, sizeof err) == 0 ? dg_fp_registry_read(path, &back, err, sizeof err) : -1;
        unlink(path);
    } else {
        char list[4096] = "[", num[32], eps_text[32], margin_text[32], from_eps[128];
        for (int i = 0; i < n; i++) {
            float_text(confs[i], num, sizeof num);
            strcat(list, i ? "," : "");
            strcat(list, num);
        }
        strcat(list, "]");
        float_text(eps, eps_text, sizeof eps_text);
        float_text(eps / 2.0f, margin_text, sizeof margin_text);
        snprintf(from_eps, sizeof from_eps, "\"eps\":%s,\"margin\":%s", eps_text, margin_text);
        char *a = subst(BASE, "[0.3,0.5]", list);
        char *b = subst(a, "\"eps\":0.01,\"margin\":0.005", from_eps);
        char *users = strstr(b, "\"users\":["); /* no users: which users fit depends on the confidences */
        if (users) snprintf(users, strlen(users) + 1, "\"users\":[]}");
        rc = dg_fp_registry_parse(b, strlen(b), "mem.json", &back, err, sizeof err);
        free(a), free(b);
    }
    if (rc != 0) {
        snprintf(why, why_len, "--conf %s --eps %g: %s", text, (double)eps, err);
        return 0;
    }
    dg_fp_registry_free(&back);
    return 1;
}

static void test_confs_registry_agree(void) {
    const float epss[] = {0.01f, 0.005f, 0.05f};
    int tried = 0, refused = 0, r;
    char text[64], first[600] = "", why[600];
    for (int e = 0; e < 3; e++)
        for (int a = 1; a < 1000; a++)
            for (int gap = 0; gap < 3; gap++) { /* one confidence, and two as close as the parser allows */
                double c0 = a / 1000.0;
                if (gap == 0) snprintf(text, sizeof text, "%g", c0);
                else snprintf(text, sizeof text, "%g,%g", c0, c0 + 2.0 * epss[e] + (gap - 1) * 0.001);
                if ((r = confs_registry_ok(text, epss[e], 0, why, sizeof why)) < 0) continue;
                tried++;
                if (r == 0 && !refused++) snprintf(first, sizeof first, "%s", why);
            }
    CHECK(tried > 3000, "%d confidence lists tried", tried);
    /* through files: the paper's grid, a window touching 1, and touching windows */
    const char *lists[] = {"0.2,0.3,0.4", "0.99", "0.02,0.98", "0.2,0.22", "0.5,0.52", "0.21,0.23"};
    int file_refused = 0;
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        r = confs_registry_ok(lists[i], 0.01f, 1, why, sizeof why);
        if (r < 0) continue;
        tried++;
        if (r == 0) {
            file_refused++;
            if (!refused++) snprintf(first, sizeof first, "%s", why);
        }
    }
    CHECK(confs_registry_ok("0.2,0.3,0.4", 0.01f, 1, why, sizeof why) == 1, "the paper's grid round-trips");
    CHECK(refused == 0, "%d of %d confidence lists that dg_fp_parse_confs accepts are refused in the registry it "
                        "writes (%d through files); first: %s", refused, tried, file_refused, first);
}

static void test_registry_corrupt(void) {
    char path[400], err[512];
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    dg_fp_registry r;
    /* the base is valid: the refusals below are not a parser that refuses everything */
    write_text(path, BASE);
    err[0] = 0;
    CHECK(dg_fp_registry_read(path, &r, err, sizeof err) == 0 && r.n_users == 2 && r.users[1].id == 3 &&
              r.users[1].cls == 1 && r.users[1].conf == 0.5f && r.n_classes_fp == 3 && r.n_confs == 2,
          "the minimal registry is accepted: %s", err);
    dg_fp_registry_free(&r);

    static const struct { const char *from, *to, *mention; } bad[] = {
        /* not a registry */
        {"{\"format\"", "[{\"format\"", "JSON"},
        {"\"dnnguard-fp-registry-1\"", "\"dnnguard-fp-registry-2\"", "format"},
        {"\"dnnguard-fp-registry-1\"", "\"dnnguard-wmkey-1\"", "format"},
        {"\"format\":\"dnnguard-fp-registry-1\",", "", "format"},
        {"\"format\":\"dnnguard-fp-registry-1\"", "\"format\":1", "format"},
        /* strings */
        {"\"net\":\"lenet5\",", "", "\"net\""},
        {"\"net\":\"lenet5\"", "\"net\":5", "\"net\""},
        {"\"split\":\"test\"", "\"split\":\"testtesttest\"", "\"split\""},
        {"\"model_sha256\":\"0123", "\"model_sha256\":\"123", "model_sha256"},
        {"\"model_sha256\":\"0123456789abcdef", "\"model_sha256\":\"0123456789ABCDEF", "model_sha256"},
        {"\"model_sha256\":\"0123", "\"model_sha256\":\"x123", "model_sha256"},
        /* shape and classes */
        {"[1,28,28]", "[1,28]", "shape"},
        {"[1,28,28]", "[4,28,28]", "shape"},
        {"[1,28,28]", "[1,0,28]", "shape"},
        {"[1,28,28]", "[1,28.5,28]", "shape"},
        {"[1,28,28]", "[1,28,4097]", "shape"},
        {"[1,28,28]", "[1,28,\"28\"]", "shape"},
        {"[1,28,28]", "28", "shape"},
        {"\"classes\":10", "\"classes\":1", "\"classes\""},
        {"\"classes\":10", "\"classes\":10.5", "\"classes\""},
        {"\"classes\":10", "\"classes\":1001", "\"classes\""},
        {"\"classes\":10", "\"classes\":\"10\"", "\"classes\""},
        /* normalisation */
        {"\"mean\":[0.1307]", "\"mean\":[0.1307,0.2]", "\"mean\""},
        {"\"mean\":[0.1307]", "\"mean\":0.1307", "\"mean\""},
        {"\"std\":[0.3081]", "\"std\":[0]", "\"std\""},
        {"\"std\":[0.3081]", "\"std\":[-0.3]", "\"std\""},
        {"\"mean\":[0.1307]", "\"mean\":[1e999]", "\"mean\""},
        /* window and margin */
        {"\"eps\":0.01", "\"eps\":0", "\"eps\""},
        {"\"eps\":0.01", "\"eps\":0.6", "\"eps\""},
        {"\"margin\":0.005", "\"margin\":0.02", "margin"},       /* margin > eps */
        {"\"margin\":0.005", "\"margin\":-0.001", "margin"},
        {"\"eps\":0.01,", "", "\"eps\""},
        /* fingerprint classes */
        {"[0,1,2]", "[0,1,10]", "fingerprint_classes"},           /* out of range */
        {"[0,1,2]", "[-1,1,2]", "fingerprint_classes"},
        {"[0,1,2]", "[0,2,1]", "fingerprint_classes"},            /* not increasing */
        {"[0,1,2]", "[0,1,1]", "fingerprint_classes"},            /* repeated */
        {"[0,1,2]", "[0,1.5,2]", "fingerprint_classes"},
        {"[0,1,2]", "[]", "fingerprint_classes"},
        {"[0,1,2]", "[0,1,2,3,4,5,6,7,8,9,0]", "fingerprint_classes"}, /* more than the net has */
        /* confidences */
        {"[0.3,0.5]", "[0.3,0.31]", "confidences"},               /* windows overlap */
        {"[0.3,0.5]", "[0.5,0.3]", "confidences"},                /* decreasing */
        {"[0.3,0.5]", "[0.005,0.5]", "confidences"},              /* window below 0 */
        {"[0.3,0.5]", "[0.3,0.995]", "confidences"},              /* window past 1 */
        {"[0.3,0.5]", "[]", "confidences"},
        {"[0.3,0.5]", "[0.3,\"0.5\"]", "confidences"},
        /* users */
        {"\"users\":[", "\"users\":5,\"u\":[", "\"users\""},
        {"[0,1,2],\"confidences\":[0.3,0.5]", "[0],\"confidences\":[0.3]", "at most"},          /* 2 users, 1 id */
        {"{\"id\":3,\"class\":1", "{\"id\":3,\"class\":0", "its id allocates"},                   /* wrong class */
        {"\"id\":3,\"class\":1,\"confidence\":0.5", "\"id\":3,\"class\":1,\"confidence\":0.3", "its id allocates"},
        {"{\"id\":3,\"class\":1,\"confidence\":0.5", "{\"id\":0,\"class\":0,\"confidence\":0.3", "ids increasing"}, /* repeat */
        {"{\"id\":0,\"class\":0", "{\"id\":4,\"class\":2", "ids increasing"},  /* ids decrease: 4, 3 */
        {"{\"id\":3,\"class\":1", "{\"id\":20,\"class\":1", "lacks a field"}, /* id past classes × confidences */
        {"{\"id\":3,\"class\":1,\"confidence\":0.5", "{\"id\":6,\"class\":3,\"confidence\":0.3", "its id allocates"},
        /* (id 6 is class 3, confidence 0: class 3 is not in fingerprint_classes) */
        {"{\"id\":0,", "{\"id\":-1,", "lacks a field"},
        {"{\"id\":0,", "{\"id\":0.5,", "lacks a field"},
        {"{\"id\":0,", "{", "lacks a field"},                            /* no id */
        {"\"class\":0,", "\"class\":10,", "lacks a field"},              /* class past the net's */
        {"\"confidence\":0.3,", "\"confidence\":1.5,", "lacks a field"},
        {"\"source_index\":5", "\"source_index\":-5", "lacks a field"},
        {"\"source_index\":5", "\"source_index\":1e10", "lacks a field"},
        {"\"user-00.png\"", "\"../user-00.png\"", "lacks a field"},      /* a path */
        {"\"user-00.png\"", "\"/tmp/user-00.png\"", "lacks a field"},
        {"\"user-00.png\"", "\"sub\\\\user-00.png\"", "lacks a field"},  /* a backslash */
        {"\"user-00.png\"", "\".user-00.png\"", "lacks a field"},        /* a leading dot */
        {"\"user-00.png\"", "\"..\"", "lacks a field"},
        {"\"user-00.png\"", "\"\"", "lacks a field"},
        {"\"user-00.png\"", "\"user-00-a-very-long-name-that-does-not-fit-the-sixty-four-bytes.png\"", "lacks a field"},
        {"\"sha256\":\"0123", "\"sha256\":\"123", "lacks a field"},      /* 63 digits */
        {"\"sha256\":\"0123", "\"sha256\":\"g123", "lacks a field"},     /* not hex */
        {"\"sha256\":\"0123", "\"sha256\":\"00123", "lacks a field"},    /* 65 digits */
        {"\"l2\":1.5", "\"l2\":-1.5", "lacks a field"},
        {"\"l2\":1.5", "\"l2\":\"1.5\"", "lacks a field"},
        {"\"confidence_at_issue\":0.302", "\"confidence_at_issue\":1.302", "lacks a field"},
        {",\"confidence_at_issue\":0.302", "", "lacks a field"},
        {"\"users\":[{", "\"users\":[7,{", "lacks a field"},          /* 3 entries, 6 ids: a number is not a user */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *text = subst(BASE, bad[i].from, bad[i].to);
        write_text(path, text);
        free(text);
        err[0] = 0;
        int rc = dg_fp_registry_read(path, &r, err, sizeof err);
        CHECK(rc == -1 && strncmp(err, path, strlen(path)) == 0 && strstr(err, bad[i].mention) && r.users == NULL &&
                  r.n_users == 0,
              "corrupt registry %zu ('%s' → '%s') refused naming the file and '%s': rc %d '%s'", i, bad[i].from,
              bad[i].to, bad[i].mention, rc, err);
        if (rc == 0) dg_fp_registry_free(&r);
    }
    /* whole-file problems */
    const char *whole[] = {"", "{", "null", "[]", "\"dnnguard-fp-registry-1\"", "{\"format\":\"dnnguard-fp-registry-1\"}"};
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++) {
        write_text(path, whole[i]);
        err[0] = 0;
        int rc = dg_fp_registry_read(path, &r, err, sizeof err);
        CHECK(rc == -1 && strncmp(err, path, strlen(path)) == 0 && strlen(err) > strlen(path) + 4,
              "'%s' refused naming the file: rc %d '%s'", whole[i], rc, err);
        if (rc == 0) dg_fp_registry_free(&r);
    }
    /* a truncated registry (what a crash mid-write would leave, were it not atomic) */
    char cut[sizeof BASE];
    memcpy(cut, BASE, sizeof BASE);
    cut[sizeof BASE / 2] = 0;
    write_text(path, cut);
    CHECK(dg_fp_registry_read(path, &r, err, sizeof err) == -1 && strstr(err, "JSON") && strstr(err, "bad.json"),
          "a truncated registry: %s", err);
    /* a missing file and a folder */
    snprintf(path, sizeof path, "%s/missing.json", tmpdir);
    err[0] = 0;
    CHECK(dg_fp_registry_read(path, &r, err, sizeof err) == -1 && strstr(err, "missing.json") && r.users == NULL,
          "a missing registry: %s", err);
    err[0] = 0;
    CHECK(dg_fp_registry_read(tmpdir, &r, err, sizeof err) == -1 && strstr(err, tmpdir), "a folder: %s", err);
    /* the parser in memory: the name given is the one in the message */
    err[0] = 0;
    CHECK(dg_fp_registry_parse("{}", 2, "mem.json", &r, err, sizeof err) == -1 && strncmp(err, "mem.json: ", 10) == 0,
          "parse names its source: %s", err);
    /* the text ends at len, not at a NUL: the valid registry cut one byte short is refused */
    CHECK(dg_fp_registry_parse(BASE, strlen(BASE) - 1, "mem.json", &r, err, sizeof err) == -1,
          "a registry one byte short of its closing brace is refused");
    CHECK(dg_fp_registry_parse(BASE, strlen(BASE), "mem.json", &r, err, sizeof err) == 0, "the whole one parses: %s",
          err);
    dg_fp_registry_free(&r);
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    unlink(path);
}

/* A registry of n users over 1000 classes × 66 confidences (capacity 66,000): every user valid. */
static char *many_users(int n, size_t *len) {
    size_t cap = 4096 + (size_t)n * 200;
    char *t = malloc(cap);
    size_t at = (size_t)snprintf(t, cap,
                                 "{\"format\":\"dnnguard-fp-registry-1\",\"net\":\"resnet18\",\"data\":\"folder:/d\","
                                 "\"split\":\"train\",\"model_sha256\":\"%s\",\"shape\":[3,64,64],\"classes\":1000,"
                                 "\"mean\":[0.5,0.5,0.5],\"std\":[0.25,0.25,0.25],\"eps\":0.005,\"margin\":0.004,"
                                 "\"fingerprint_classes\":[",
                                 SHA_A);
    for (int c = 0; c < 1000; c++) at += (size_t)snprintf(t + at, cap - at, "%s%d", c ? "," : "", c);
    at += (size_t)snprintf(t + at, cap - at, "],\"confidences\":[");
    for (int j = 0; j < 66; j++) at += (size_t)snprintf(t + at, cap - at, "%s0.%02d", j ? "," : "", j + 1);
    at += (size_t)snprintf(t + at, cap - at, "],\"users\":[");
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(t + at, cap - at,
                               "%s{\"id\":%d,\"class\":%d,\"confidence\":0.%02d,\"source_index\":%d,\"file\":\"u.png\","
                               "\"sha256\":\"%s\",\"l2\":1,\"confidence_at_issue\":0.5}",
                               i ? "," : "", i, i / 66, i % 66 + 1, i, SHA_A);
    at += (size_t)snprintf(t + at, cap - at, "]}");
    *len = at;
    return t;
}

/* fp issue writes at most DG_FP_MAX_USERS users: a registry of that many parses (in one walk of
 * the list, not one walk per user), one more is refused before any user is read */
static void test_registry_many_users(void) {
    dg_fp_registry r;
    char err[512] = "";
    size_t len;
    char *t = many_users(DG_FP_MAX_USERS, &len);
    int rc = dg_fp_registry_parse(t, len, "big.json", &r, err, sizeof err);
    CHECK(rc == 0 && r.n_users == DG_FP_MAX_USERS && r.users[DG_FP_MAX_USERS - 1].id == DG_FP_MAX_USERS - 1 &&
              r.users[DG_FP_MAX_USERS - 1].cls == (DG_FP_MAX_USERS - 1) / 66 &&
              r.users[DG_FP_MAX_USERS - 1].source == DG_FP_MAX_USERS - 1,
          "a registry of %d users parses: rc %d %s", DG_FP_MAX_USERS, rc, err);
    if (rc == 0) dg_fp_registry_free(&r);
    free(t);
    t = many_users(DG_FP_MAX_USERS + 1, &len);
    err[0] = 0;
    rc = dg_fp_registry_parse(t, len, "big.json", &r, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "65536"), "a registry of %d users is refused naming the limit: %s",
          DG_FP_MAX_USERS + 1, err);
    free(t);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/dg_fp_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_parse_classes();
    test_parse_confs();
    test_capacity();
    test_decide();
    test_random_class();
    test_registry_round_trip();
    test_confs_registry_agree();
    test_registry_corrupt();
    test_registry_many_users();
    dg_test_empty_dir(tmpdir);
    rmdir(tmpdir);
    return dg_test_done("test_fingerprint");
}
