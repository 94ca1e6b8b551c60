/*
 * libsodium's randomness from a seed, for tests: what the simulated disk
 * does not draw from its own generator (a backup's salt, a secret stream's
 * header) then repeats when the seed does. The seed is $BG_TEST_SEED, or
 * the clock's when unset, and is printed, so that a run that fails can be
 * replayed byte for byte. Call before anything calls sodium_init().
 */
#ifndef BOXGUARD_SODIUM_SEED_H
#define BOXGUARD_SODIUM_SEED_H

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t ss_state;

/* splitmix64: a test's random numbers, not a secret's. */
static uint32_t ss_random(void)
{
    uint64_t z = (ss_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static void ss_buf(void *const buf, const size_t size)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)ss_random();
}

static const char *ss_name(void)
{
    return "boxguard test seed";
}

static struct randombytes_implementation ss_impl = {
    .implementation_name = ss_name,
    .random = ss_random,
    .buf = ss_buf,
};

static void ss_seed_sodium(void)
{
    const char *env = getenv("BG_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 10)
                                : (uint64_t)time(NULL) ^ (uint64_t)clock();
    ss_state = seed;
    if (randombytes_set_implementation(&ss_impl) != 0 || sodium_init() < 0) {
        fprintf(stderr, "libsodium cannot start with a seeded generator\n");
        exit(2);
    }
    printf("sodium seed: %llu (BG_TEST_SEED=%llu to replay)\n",
           (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
}

#endif
