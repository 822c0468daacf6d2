/*
 * Sample images from an odelt engine folder through the C ABI.
 *
 *   cc examples/c/sample.c -I runtime/include -L target/debug -lodelt_runtime -o sample
 *   ./sample ENGINES_DIR OUT.f32 [SEED [N [STEPS [LENGTH [CLASS [CFG]]]]]]
 *
 * Writes N*C*H*W float32 values (row-major [N, C, H, W], native byte order) to OUT.f32 and
 * prints one line: "n=N c=C h=H w=W length=L nfe=NFE". ONNX Runtime is found through
 * ORT_DYLIB_PATH or the setup venv (scripts/setup.sh). Exit status: 0 on success, else the
 * OdeltStatus of the failing call.
 */
#include <stdio.h>
#include <stdlib.h>

#include "odelt.h"

static int fail(const char *what, OdeltStatus status) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)status, odelt_last_error());
    return (int)status;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ENGINES_DIR OUT.f32 [SEED [N [STEPS [LENGTH [CLASS [CFG]]]]]]\n", argv[0]);
        return 1;
    }
    OdeltRuntime *rt = NULL;
    OdeltStatus status = odelt_runtime_open(argv[1], NULL, &rt);
    if (status != ODELT_OK) return fail("odelt_runtime_open", status);

    uint32_t c = 0, h = 0, w = 0;
    status = odelt_runtime_shape(rt, &c, &h, &w);
    if (status != ODELT_OK) return fail("odelt_runtime_shape", status);

    size_t count = 0;
    status = odelt_runtime_lengths(rt, NULL, 0, &count);
    if (status != ODELT_OK) return fail("odelt_runtime_lengths", status);
    uint32_t *lengths = calloc(count, sizeof(uint32_t));
    status = odelt_runtime_lengths(rt, lengths, count, &count);
    if (status != ODELT_OK) return fail("odelt_runtime_lengths", status);

    OdeltSampleRequest req;
    odelt_sample_request_default(&req);
    req.seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
    req.n = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 4;
    req.solver = ODELT_SOLVER_EULER;
    req.steps = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : 8;
    req.length = argc > 6 ? (uint32_t)strtoul(argv[6], NULL, 10) : lengths[count - 1];
    int64_t *labels = NULL;
    if (argc > 7) {
        labels = malloc(req.n * sizeof(int64_t));
        for (uint32_t i = 0; i < req.n; i++) labels[i] = strtoll(argv[7], NULL, 10);
        req.labels = labels;
    }
    req.cfg_scale = argc > 8 ? strtof(argv[8], NULL) : 1.0f;

    size_t len = (size_t)req.n * c * h * w;
    float *x = malloc(len * sizeof(float));
    uint32_t nfe = 0;
    status = odelt_sample(rt, &req, x, len, &nfe);
    if (status != ODELT_OK) return fail("odelt_sample", status);

    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(x, sizeof(float), len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", argv[2]);
        return 1;
    }
    printf("n=%u c=%u h=%u w=%u length=%u nfe=%u\n", req.n, c, h, w, req.length, nfe);

    /* A bad request: the error comes back as a status and a message, never a crash. */
    req.steps = 0;
    status = odelt_sample(rt, &req, x, len, &nfe);
    if (status != ODELT_INVALID_ARGUMENT) {
        fprintf(stderr, "expected ODELT_INVALID_ARGUMENT for steps = 0, got %d\n", (int)status);
        return 1;
    }
    fprintf(stderr, "steps = 0 rejected as expected: %s\n", odelt_last_error());

    free(x);
    free(labels);
    free(lengths);
    odelt_runtime_close(rt);
    return 0;
}
