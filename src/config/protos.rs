//! The `proto` files of `capture` (`[stack.capture]` and a service's): the schemas gRPC messages
//! are shown with, read into one `prost_reflect::DescriptorPool` when the config is loaded. A
//! file is a `.proto` source, compiled by `protox` (imports looked up in `proto_path`'s folders,
//! then in the file's own folder, then among Google's well-known types), or anything else: a
//! compiled `FileDescriptorSet` (`protoc --descriptor_set_out`, `buf build -o`).

use miette::Diagnostic as _;
use prost_reflect::DescriptorPool;
use std::path::{Path, PathBuf};

/// Add the schemas of `file` to `pool`; the error says what is wrong (with the `.proto` file's
/// line and column when the compiler gave them).
pub fn add(pool: &mut DescriptorPool, file: &Path, includes: &[PathBuf]) -> Result<(), String> {
    if !file.is_file() {
        return Err(format!("no such file: {}", file.display()));
    }
    if file.extension().is_some_and(|e| e == "proto") {
        let folder = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut compiler =
            protox::Compiler::new(includes.iter().map(PathBuf::as_path).chain([folder]))
                .map_err(|e| compiled(&e))?;
        compiler.include_imports(true);
        compiler.open_file(file).map_err(|e| compiled(&e))?;
        pool.add_file_descriptor_set(compiler.file_descriptor_set())
            .map_err(|e| format!("{}: {e}", file.display()))
    } else {
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        pool.decode_file_descriptor_set(bytes.as_slice())
            .map_err(|e| {
                format!(
                    "{} is not a FileDescriptorSet ({e}); give a `.proto` file, or one made by `protoc --descriptor_set_out` or `buf build -o`",
                    file.display()
                )
            })
    }
}

/// The compiler's error, `users.proto:3:14: expected ';'` when it says where.
fn compiled(e: &protox::Error) -> String {
    let place = e.source_code().zip(e.labels().and_then(|mut l| l.next()));
    let at = place.and_then(|(source, label)| {
        let span = source.read_span(label.inner(), 0, 0).ok()?;
        let name = span
            .name()
            .map(str::to_string)
            .or_else(|| e.file().map(str::to_string))?;
        Some(format!(
            "{name}:{}:{}: ",
            span.line() + 1,
            span.column() + 1
        ))
    });
    match (at, e.file()) {
        (Some(at), _) => format!("{at}{e}"),
        (None, Some(file)) if !e.to_string().contains(file) => format!("{file}: {e}"),
        (None, _) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &str = "syntax = \"proto3\";\npackage users.v1;\nimport \"common.proto\";\n\
        message GetUser { int32 id = 1; }\n\
        service Users { rpc Get(GetUser) returns (common.User); }\n";
    const COMMON: &str = "syntax = \"proto3\";\npackage common;\nmessage User { int32 id = 1; string display_name = 2; }\n";

    #[test]
    fn a_proto_file_compiles_with_its_imports_and_a_descriptor_set_reads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shared")).unwrap();
        std::fs::write(dir.path().join("users.proto"), USERS).unwrap();
        std::fs::write(dir.path().join("shared/common.proto"), COMMON).unwrap();
        let mut pool = DescriptorPool::new();
        let includes = [dir.path().join("shared")];
        add(&mut pool, &dir.path().join("users.proto"), &includes).unwrap();
        let method = pool
            .get_service_by_name("users.v1.Users")
            .and_then(|s| s.methods().find(|m| m.name() == "Get"))
            .unwrap();
        assert_eq!(method.output().full_name(), "common.User");

        // The same schemas compiled (as `protoc --descriptor_set_out` does), then read.
        let mut compiler = protox::Compiler::new([dir.path(), &includes[0]]).unwrap();
        compiler.include_imports(true);
        compiler.open_file("users.proto").unwrap();
        let set = dir.path().join("users.binpb");
        std::fs::write(&set, compiler.encode_file_descriptor_set()).unwrap();
        let mut read = DescriptorPool::new();
        add(&mut read, &set, &[]).unwrap();
        assert!(read.get_message_by_name("users.v1.GetUser").is_some());
    }

    #[test]
    fn a_missing_file_an_unknown_import_or_a_syntax_error_is_said_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut pool = DescriptorPool::new();
        let err = add(&mut pool, &dir.path().join("nope.proto"), &[]).unwrap_err();
        assert!(err.contains("no such file"), "{err}");
        std::fs::write(dir.path().join("users.proto"), USERS).unwrap();
        let err = add(&mut pool, &dir.path().join("users.proto"), &[]).unwrap_err();
        assert!(
            err.contains("users.proto:3:") && err.contains("common.proto"),
            "{err}"
        );
        let broken = dir.path().join("broken.proto");
        std::fs::write(
            &broken,
            "syntax = \"proto3\";\nmessage A {\n  int32 id = 1\n}\n",
        )
        .unwrap();
        let err = add(&mut pool, &broken, &[]).unwrap_err();
        assert!(err.starts_with("broken.proto:4:1: "), "{err}");
        let garbage = dir.path().join("schemas.bin");
        std::fs::write(&garbage, b"\xff\xff\xff").unwrap();
        let err = add(&mut pool, &garbage, &[]).unwrap_err();
        assert!(err.contains("not a FileDescriptorSet"), "{err}");
    }
}
