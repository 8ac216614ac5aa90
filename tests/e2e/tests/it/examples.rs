//! The subscriber examples in `examples/` (Python, TypeScript) against the reconnect story.
