"""metafs: the reference FUSE client. Metadata goes through the gRPC client library;
file data goes to a directory used as an object store, laid out by the chunk map.

Modules: objects (the object store), filedata (file bytes <-> chunk map + objects),
fs (the FUSE operations), mount (running libfuse over them)."""
