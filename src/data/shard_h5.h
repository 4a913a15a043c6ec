// Small HDF5 C-API helpers shared by the shard reader and writer: an owning handle, and scalar
// attributes (integers; strings as variable-length UTF-8, which h5py reads as str). Callers hold
// hdf5_mutex() around every use: Debian's libhdf5 is built without thread safety.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>

namespace kiln::data::h5 {

// Owns an hid_t and closes it with the matching H5*close when it goes out of scope.
class Hid {
 public:
  using Closer = herr_t (*)(hid_t);
  Hid() = default;
  Hid(hid_t id, Closer close) : id_(id), close_(close) {}
  Hid(Hid&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Hid& operator=(Hid&& o) noexcept {
    if (this != &o) { reset(); id_ = o.id_; close_ = o.close_; o.id_ = -1; }
    return *this;
  }
  ~Hid() { reset(); }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// Turns off HDF5's own error-stack printing once (kiln reports errors itself).
void quiet();

void write_attr_u64(hid_t obj, const char* name, uint64_t v);
void write_attr_str(hid_t obj, const char* name, const std::string& v);
// nullopt when the attribute is missing or has the wrong kind.
std::optional<uint64_t> read_attr_u64(hid_t obj, const char* name);
std::optional<std::string> read_attr_str(hid_t obj, const char* name);

}  // namespace kiln::data::h5
