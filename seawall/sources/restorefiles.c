/* Small files of a tree restore, created and written in one call (loaded by files_native.py).
 *
 * A restore of 100,000 small files makes ~5 system calls per file. Made from Python, each one
 * releases and retakes the GIL, and with three restore threads on two cores a thread back from a
 * 2-microsecond futimens waits for the GIL far longer than the call took. Here one ctypes call
 * (which releases the GIL once) creates, writes, gives owner/mode/times to and closes a group of
 * files while the other threads decrypt and check the next blobs in Python.
 *
 * Per file, in the order files_restore._Tree.file_meta uses (files with extended attributes stay
 * in Python): open(O_CREAT|O_EXCL|O_NOFOLLOW, mode & 0777), write all, fchown if asked (before
 * fchmod: chown clears set-user-ID bits), fchmod if asked, futimens (atime = mtime), close.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SW_CHOWN 1
#define SW_CHMOD 2

int seawall_restorefiles_abi(void) { return 1; }

static int write_all(int fd, const char *data, int64_t len) {
    int64_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, (size_t)(len - done));
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        done += n;
    }
    return 0;
}

/* Writes files 0..n-1; returns n, or the index of the file that failed with its errno in *err
 * (the files before it are complete; that one may exist, partly written). */
int64_t seawall_write_files(int64_t n, const char *const *paths, const char *const *data,
                            const int64_t *lens, const uint32_t *modes, const int64_t *mtimes_ns,
                            const uint32_t *flags, const uint32_t *uids, const uint32_t *gids, int *err) {
    for (int64_t i = 0; i < n; i++) {
        int fd = open(paths[i], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, modes[i] & 0777);
        if (fd < 0) {
            *err = errno;
            return i;
        }
        struct timespec times[2];
        times[0].tv_sec = times[1].tv_sec = (time_t)(mtimes_ns[i] / 1000000000);
        times[0].tv_nsec = times[1].tv_nsec = (long)(mtimes_ns[i] % 1000000000);
        if (times[0].tv_nsec < 0) { /* before 1970: floor, as Python's os.utime(ns=...) does */
            times[0].tv_sec = times[1].tv_sec -= 1;
            times[0].tv_nsec = times[1].tv_nsec += 1000000000;
        }
        if (write_all(fd, data[i], lens[i]) < 0
            || ((flags[i] & SW_CHOWN) && fchown(fd, uids[i], gids[i]) < 0)
            || ((flags[i] & SW_CHMOD) && fchmod(fd, modes[i]) < 0)
            || futimens(fd, times) < 0) {
            *err = errno;
            close(fd);
            return i;
        }
        if (close(fd) < 0) {
            *err = errno;
            return i;
        }
    }
    return n;
}
