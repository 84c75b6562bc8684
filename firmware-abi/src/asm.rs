//! Text assembly format for command streams (assembler and disassembler).
