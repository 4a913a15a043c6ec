// HDF5 attribute helpers (see shard_h5.h). Strings are written variable-length UTF-8 and read
// back whether variable or fixed length, so files from h5py-based tools also load.
#include "data/shard_h5.h"

#include <mutex>
#include <vector>

namespace kiln::data::h5 {

void quiet() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

void write_attr_u64(hid_t obj, const char* name, uint64_t v) {
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid a(H5Acreate2(obj, name, H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  H5Awrite(a.get(), H5T_NATIVE_UINT64, &v);
}

void write_attr_str(hid_t obj, const char* name, const std::string& v) {
  Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid a(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* p = v.c_str();
  H5Awrite(a.get(), type.get(), &p);
}

std::optional<uint64_t> read_attr_u64(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return std::nullopt;
  Hid a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  Hid type(H5Aget_type(a.get()), H5Tclose);
  if (!a.ok() || H5Tget_class(type.get()) != H5T_INTEGER) return std::nullopt;
  uint64_t v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_UINT64, &v) < 0) return std::nullopt;
  return v;
}

std::optional<std::string> read_attr_str(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return std::nullopt;
  Hid a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  Hid type(H5Aget_type(a.get()), H5Tclose);
  if (!a.ok() || H5Tget_class(type.get()) != H5T_STRING) return std::nullopt;
  if (H5Tis_variable_str(type.get()) > 0) {
    Hid mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* p = nullptr;
    if (H5Aread(a.get(), mem.get(), &p) < 0 || !p) return std::nullopt;
    std::string s(p);
    H5free_memory(p);
    return s;
  }
  size_t n = H5Tget_size(type.get());
  std::vector<char> buf(n + 1, 0);
  if (H5Aread(a.get(), type.get(), buf.data()) < 0) return std::nullopt;
  return std::string(buf.data());
}

}  // namespace kiln::data::h5
