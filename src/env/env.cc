#include "env/env.h"

namespace rkv {

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string path(dir);
  if (!path.empty() && path.back() != '/') path.push_back('/');
  path.append(name);
  return path;
}

Result<std::string> ReadFileToString(Env* env, const std::string& path) {
  RKV_ASSIGN_OR_RETURN(uint64_t size, env->GetFileSize(path));
  RKV_ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, env->NewRandomAccessFile(path));
  std::string data(size, '\0');
  std::string_view result;
  RKV_RETURN_IF_ERROR(file->Read(0, size, data.data(), &result));
  if (result.data() != data.data()) data.assign(result);
  return data;
}

Status WriteFileAtomically(Env* env, const std::string& path, std::string_view data, bool sync) {
  const std::string tmp = path + ".tmp";
  {
    RKV_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, env->NewWritableFile(tmp));
    RKV_RETURN_IF_ERROR(file->Append(data));
    if (sync) RKV_RETURN_IF_ERROR(file->Sync());
    RKV_RETURN_IF_ERROR(file->Close());
  }
  RKV_RETURN_IF_ERROR(env->RenameFile(tmp, path));
  if (sync) {
    const size_t slash = path.rfind('/');
    RKV_RETURN_IF_ERROR(env->SyncDir(slash == std::string::npos ? "." : path.substr(0, slash)));
  }
  return Status::OK();
}

std::string ParentDir(const std::string& path) {
  const size_t slash = path.find_last_of('/', path.size() > 1 ? path.size() - 2 : 0);
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace rkv
