// The header used from C++17: RAII wrappers with unique_ptr deleters, std::string outputs through
// the size-query convention, a captureless lambda as the event callback, std::thread.
#include "umbra.h"
#include "umbra.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct VolumeDeleter {
    void operator()(umbra_volume *v) const noexcept { umbra_volume_free(v); }
};
struct ArrayDeleter {
    void operator()(umbra_array *a) const noexcept { umbra_array_free(a); }
};
using Volume = std::unique_ptr<umbra_volume, VolumeDeleter>;
using Array = std::unique_ptr<umbra_array, ArrayDeleter>;

void check(umbra_status s, const char *what) {
    if (s != UMBRA_OK) {
        std::string msg(umbra_last_error(nullptr, 0), '\0');
        umbra_last_error(&msg[0], msg.size() + 1);
        std::fprintf(stderr, "%s: %s: %s\n", what, umbra_status_name(s), msg.c_str());
        std::exit(1);
    }
}

template <typename F> std::string get_string(F &&f) {
    size_t len = 0;
    umbra_status s = f(nullptr, 0, &len);
    if (s == UMBRA_OK) return std::string();
    if (s != UMBRA_E_BUFFER_TOO_SMALL) check(s, "size query");
    std::vector<char> buf(len + 1);
    check(f(buf.data(), buf.size(), &len), "string output");
    return std::string(buf.data(), len);
}

}  // namespace

int main() {
    static_assert(sizeof(umbra_status) == 4, "umbra_status is uint32_t");
    if (umbra_abi_version() != UMBRA_ABI_VERSION) return 1;

    umbra_volume *raw = nullptr;
    check(umbra_volume_create_mem(1 << 20, 4096, &raw), "create");
    Volume vol(raw);

    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++) {
        threads.emplace_back([&vol, t] {
            std::string text = "thread " + std::to_string(t);
            check(umbra_volume_write(vol.get(), static_cast<uint64_t>(t) * 4096,
                                     reinterpret_cast<const uint8_t *>(text.data()), text.size()),
                  "write");
        });
    }
    for (auto &th : threads) th.join();
    uint64_t snap = 0;
    check(umbra_snapshot_create(vol.get(), &snap), "snapshot");
    check(umbra_volume_write(vol.get(), 0, reinterpret_cast<const uint8_t *>("changed!"), 8),
          "overwrite");
    char buf[8] = {};
    check(umbra_snapshot_read(vol.get(), snap, 0, reinterpret_cast<uint8_t *>(buf), 8), "read");
    if (std::string(buf, 8) != "thread 0") return 2;

    umbra_array *raw_array = nullptr;
    check(umbra_array_open(nullptr, &raw_array), "array");
    Array array(raw_array);
    static std::atomic<int> events{0};
    uint64_t sub = 0;
    check(umbra_array_subscribe(
              array.get(),
              [](void *, uint32_t kind, const char *, const char *) {
                  if (kind == UMBRA_EVENT_LUN_ARRIVE) events++;
              },
              nullptr, &sub),
          "subscribe");
    check(umbra_lun_create(array.get(), "cxx", 1 << 20, "iqn.1991-05.com.microsoft:CXX"),
          "lun");
    std::string mask = get_string([&](char *b, size_t l, size_t *n) {
        return umbra_lun_get_mask(array.get(), "cxx", b, l, n);
    });
    if (mask != "iqn.1991-05.com.microsoft:cxx") return 3;
    std::string view = get_string([&](char *b, size_t l, size_t *n) {
        return umbra_initiator_get_luns(array.get(), "iqn.1991-05.com.microsoft:cxx", b, l, n);
    });
    if (view != "cxx") return 4;
    array.reset();  // delivers the queued events and joins the notification thread
    if (events.load() != 1) return 5;

    std::printf("cpp_smoke: ok\n");
    return 0;
}
