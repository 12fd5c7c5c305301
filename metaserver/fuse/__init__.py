"""metafs: the reference FUSE client. Metadata goes through the gRPC client library;
file data goes to a directory used as an object store, laid out by the chunk map.

Modules: fs (the FUSE operations), mount (running libfuse over them), filedata (file
bytes <-> chunk map + objects), objects (the object store), namecache (what a mount
may remember about names), session (the mount's lease in the server, under which it
holds locks and open-unlinked files). docs/metafs.md says how it all fits."""
