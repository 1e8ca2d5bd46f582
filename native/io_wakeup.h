// A file descriptor the main thread makes readable to wake a connection's I/O thread out of poll().
// eventfd on Linux, a non-blocking pipe elsewhere.
#pragma once

#include <cerrno>
#include <cstdint>

#include <fcntl.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

namespace erlpeb {

class Wakeup {
 public:
  Wakeup() {
#ifdef __linux__
    readFd_ = writeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
#else
    int fds[2];
    if (pipe(fds) == 0) {
      for (int fd : fds) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
      }
      readFd_ = fds[0];
      writeFd_ = fds[1];
    }
#endif
  }
  ~Wakeup() {
    if (readFd_ >= 0) close(readFd_);
    if (writeFd_ >= 0 && writeFd_ != readFd_) close(writeFd_);
  }
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  bool ok() const { return readFd_ >= 0; }
  int fd() const { return readFd_; }

  // Any thread. A full pipe or counter already means "awake", so EAGAIN is success.
  void Notify() {
#ifdef __linux__
    uint64_t one = 1;
    const void* p = &one;
    size_t n = sizeof one;
#else
    char one = 1;
    const void* p = &one;
    size_t n = 1;
#endif
    ssize_t r;
    do {
      r = write(writeFd_, p, n);
    } while (r < 0 && errno == EINTR);
  }

  // The I/O thread, after poll() reported the fd readable. One read resets an eventfd.
  void Drain() {
    char buf[64];
    ssize_t r;
    do {
      r = read(readFd_, buf, sizeof buf);
#ifdef __linux__
    } while (r < 0 && errno == EINTR);
#else
    } while (r > 0 || (r < 0 && errno == EINTR));
#endif
  }

 private:
  int readFd_ = -1;
  int writeFd_ = -1;
};

}  // namespace erlpeb
