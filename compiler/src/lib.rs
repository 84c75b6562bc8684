//! Not yet implemented: this crate is filled by a later issue (see the README's
//! roadmap). It holds no code until then, so that nothing here pretends to work.
