//! Provisioning as code: stack files, their plans, and the server-side runner that carries them out.
