// Buffer: a kernel binding's array argument on either device, read from a numpy array (or anything
// numpy.asarray takes, e.g. an object with __array_interface__) or from an object exposing
// __cuda_array_interface__ (cupy). A binding declared with Buffer parameters serves both devices.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "dtype.h"

namespace distml {

enum class Device { cpu, cuda };

struct Buffer {
  pybind11::object owner;  // the array the memory belongs to (numpy's conversion of the argument, if one was made)
  void* ptr = nullptr;
  int64_t numel = 0;
  int dtype = -1;           // a DType, or -1 for one the kernels do not know (described by dtype_text)
  std::string dtype_text;   // numpy's name of that unknown dtype (a typestr for CUDA arrays)
  bool c_contiguous = true;
  bool readonly = false;
  Device device = Device::cpu;
  // __cuda_array_interface__'s stream: 0 none given, 1 the legacy default stream, 2 the per-thread
  // default stream, otherwise a cudaStream_t. The CUDA launchers run on it, after the producer's work.
  uintptr_t stream = 0;

  int64_t size() const { return numel; }
  const void* data() const { return ptr; }
  void* mutable_data() const {
    if (readonly) throw std::domain_error("array is not writeable");
    return ptr;
  }
  std::string dtype_name() const { return dtype >= 0 ? distml::dtype_name(static_cast<DType>(dtype)) : dtype_text; }
  bool same_dtype(const Buffer& other) const {
    return dtype >= 0 || other.dtype >= 0 ? dtype == other.dtype : dtype_text == other.dtype_text;
  }
};

// numpy's dtype.char -> DType (-1: not a kernel dtype).
inline int dtype_code(char c) {
  switch (c) {
    case 'e': return static_cast<int>(DType::f16);
    case 'f': return static_cast<int>(DType::f32);
    case 'd': return static_cast<int>(DType::f64);
    case 'b': return static_cast<int>(DType::i8);
    case 'h': return static_cast<int>(DType::i16);
    case 'i': return static_cast<int>(DType::i32);
    case 'l': return static_cast<int>(DType::i64);
    case 'q': return static_cast<int>(DType::i64);
    case 'B': return static_cast<int>(DType::u8);
    case '?': return static_cast<int>(DType::b8);
    case 'E': return static_cast<int>(DType::bf16);  // ml_dtypes.bfloat16
  }
  return -1;
}

// An array-interface typestr ("<f4", "|b1") -> DType (-1: not a kernel dtype); little-endian hosts only.
inline int typestr_code(const std::string& t) {
  if (t.size() < 3 || t[0] == '>') return -1;
  const std::string k = t.substr(1);
  if (k == "f2") return static_cast<int>(DType::f16);
  if (k == "f4") return static_cast<int>(DType::f32);
  if (k == "f8") return static_cast<int>(DType::f64);
  if (k == "i1") return static_cast<int>(DType::i8);
  if (k == "i2") return static_cast<int>(DType::i16);
  if (k == "i4") return static_cast<int>(DType::i32);
  if (k == "i8") return static_cast<int>(DType::i64);
  if (k == "u1") return static_cast<int>(DType::u8);
  if (k == "b1") return static_cast<int>(DType::b8);
  return -1;
}

inline Buffer numpy_buffer(const pybind11::array& a) {
  Buffer b;
  b.owner = a;
  b.ptr = const_cast<void*>(a.data());
  b.numel = a.size();
  pybind11::dtype dtype = a.dtype();
  b.dtype = dtype_code(dtype.char_());
  if (b.dtype < 0) b.dtype_text = pybind11::str(dtype);
  b.c_contiguous = a.flags() & pybind11::array::c_style;
  b.readonly = !a.writeable();
  return b;
}

// The buffer of an object with __cuda_array_interface__ (version 2 or 3), `interface` being that dict.
inline Buffer cuda_buffer(pybind11::handle owner, const pybind11::dict& interface) {
  namespace py = pybind11;
  Buffer b;
  b.owner = py::reinterpret_borrow<py::object>(owner);
  b.device = Device::cuda;
  py::tuple data = interface["data"];
  b.ptr = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
  b.readonly = data[1].cast<bool>();
  std::string typestr = interface["typestr"].cast<std::string>();
  b.dtype = typestr_code(typestr);
  if (b.dtype < 0) b.dtype_text = typestr;
  py::tuple shape = interface["shape"];
  b.numel = 1;
  for (auto n : shape) b.numel *= n.cast<int64_t>();
  if (interface.contains("strides") && !interface["strides"].is_none()) {
    py::tuple strides = interface["strides"];
    int64_t expected = std::stoll(typestr.substr(2));  // the item size
    for (size_t i = shape.size(); i-- > 0;) {
      int64_t n = shape[i].cast<int64_t>();
      if (n != 1 && strides[i].cast<int64_t>() != expected) b.c_contiguous = false;
      expected *= n;
    }
  }
  if (interface.contains("stream") && !interface["stream"].is_none())
    b.stream = interface["stream"].cast<uintptr_t>();
  return b;
}

// The DType of a buffer, or a TypeError naming what came.
inline DType dtype_of(const Buffer& b) {
  if (b.dtype < 0) throw pybind11::type_error("unsupported dtype " + b.dtype_name());
  return static_cast<DType>(b.dtype);
}

inline void require_contiguous(const Buffer& b, const char* what) {
  if (!b.c_contiguous) throw pybind11::value_error(std::string(what) + " must be C-contiguous");
}

inline const char* device_name(Device d) { return d == Device::cpu ? "CPU" : "CUDA"; }

// The device all of `buffers` are on: ValueError when they differ; for CUDA buffers, RuntimeError
// unless the kernel has a CUDA version (`cuda_twin`) and _C was built with CUDA.
inline Device common_device(const char* what, std::initializer_list<const Buffer*> buffers, bool cuda_twin) {
  const Device device = (*buffers.begin())->device;
  for (const Buffer* b : buffers)
    if (b->device != device)
      throw pybind11::value_error(std::string(what) + ": expected all arrays on one device, got " +
                                  device_name(device) + " and " + device_name(b->device) + " arrays");
  if (device == Device::cuda) {
#ifdef DISTML_WITH_CUDA
    if (!cuda_twin) throw std::runtime_error(std::string(what) + ": this kernel has no CUDA version in distml._C");
#else
    throw std::runtime_error(std::string(what) + ": distml._C was built without CUDA (no nvcc at build time)");
#endif
  }
  return device;
}

// For the kernels without a CUDA version.
inline void require_host(const Buffer& b, const char* what) { common_device(what, {&b}, false); }

}  // namespace distml

namespace pybind11::detail {

// Buffer parameters take numpy arrays as they are, objects with __cuda_array_interface__, and (in
// pybind11's converting pass, as py::array parameters do) whatever numpy.asarray converts.
template <>
struct type_caster<distml::Buffer> {
  PYBIND11_TYPE_CASTER(distml::Buffer, const_name("numpy.ndarray | cuda array"));

  bool load(handle src, bool convert) {
    if (isinstance<array>(src)) {
      value = distml::numpy_buffer(reinterpret_borrow<array>(src));
      return true;
    }
    if (hasattr(src, "__cuda_array_interface__")) {
      value = distml::cuda_buffer(src, src.attr("__cuda_array_interface__").cast<dict>());
      return true;
    }
    if (!convert) return false;
    array converted = array::ensure(src);  // clears numpy's error when it cannot convert
    if (!converted) return false;
    value = distml::numpy_buffer(converted);
    return true;
  }

  static handle cast(const distml::Buffer& b, return_value_policy, handle) { return b.owner.inc_ref(); }
};

}  // namespace pybind11::detail
