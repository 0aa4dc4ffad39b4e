//! A pass over a pickle's opcodes that lists the Python globals it would import, without building
//! any object. The PyTorch reader never runs pickle code either; this pass makes its policy
//! explicit: a weights file may only name the globals a `state_dict` (or a training checkpoint of
//! plain values around one) needs, as `torch.load(weights_only=True)` would. Anything else is
//! refused with the global's name, before a tensor is read.
//!
//! The pass tracks just enough of the pickle machine (stack, marks, memo, strings) to resolve
//! `STACK_GLOBAL` (protocol 4+); protocol 2, what `torch.save` writes, names globals inline.

/// What stopped the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// The stream ended before the pickle's STOP.
    Truncated,
    /// Not a pickle this scanner understands.
    Corrupt(String),
    /// A global outside the allow-list.
    UnknownGlobal { module: String, name: String },
}

/// Globals a state dict or checkpoint of plain values needs (the same set `torch.load`'s
/// `weights_only` unpickler accepts, plus numpy scalars and dtypes that training scripts store
/// beside the weights). Every one of them is data; none runs code when read by pytorch-reader.
pub fn allowed_global(module: &str, name: &str) -> bool {
    match module {
        "collections" => name == "OrderedDict",
        "torch._utils" => matches!(
            name,
            "_rebuild_tensor"
                | "_rebuild_tensor_v2"
                | "_rebuild_tensor_v3"
                | "_rebuild_parameter"
                | "_rebuild_parameter_with_state"
        ),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch.nn.parameter" => name == "Parameter",
        "torch" => {
            name.ends_with("Storage")
                || matches!(
                    name,
                    "Size"
                        | "device"
                        | "Tensor"
                        | "float32"
                        | "float64"
                        | "float16"
                        | "bfloat16"
                        | "int64"
                        | "int32"
                        | "int16"
                        | "int8"
                        | "uint8"
                        | "bool"
                        | "float"
                        | "double"
                        | "half"
                        | "long"
                        | "int"
                )
        }
        "torch.storage" => matches!(name, "UntypedStorage" | "TypedStorage"),
        "builtins" | "__builtin__" => matches!(name, "set" | "frozenset" | "slice" | "complex"),
        "_codecs" => name == "encode",
        "numpy.core.multiarray" | "numpy._core.multiarray" => name == "scalar",
        "numpy" => name == "dtype",
        _ => false,
    }
}

#[derive(Clone)]
enum Item {
    Str(String),
    Other,
    Mark,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ScanError> {
        let end = self.pos.checked_add(n).ok_or(ScanError::Truncated)?;
        if end > self.data.len() {
            return Err(ScanError::Truncated);
        }
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ScanError> {
        Ok(self.take(1)?[0])
    }
    fn le(&mut self, n: usize) -> Result<u64, ScanError> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }
    fn len(&mut self, n: usize) -> Result<usize, ScanError> {
        let v = self.le(n)?;
        usize::try_from(v).map_err(|_| ScanError::Corrupt("length overflows".into()))
    }
    fn line(&mut self) -> Result<&'a [u8], ScanError> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(ScanError::Truncated)?;
        self.pos += nl + 1;
        Ok(&rest[..nl])
    }
}

struct Machine {
    stack: Vec<Item>,
    memo: std::collections::HashMap<u64, Item>,
}

impl Machine {
    fn pop(&mut self) -> Result<Item, ScanError> {
        self.stack
            .pop()
            .ok_or_else(|| ScanError::Corrupt("stack underflow".into()))
    }
    fn pop_n(&mut self, n: usize) -> Result<(), ScanError> {
        for _ in 0..n {
            self.pop()?;
        }
        Ok(())
    }
    fn pop_mark(&mut self) -> Result<(), ScanError> {
        loop {
            if let Item::Mark = self.pop()? {
                return Ok(());
            }
        }
    }
    fn top(&self) -> Result<Item, ScanError> {
        self.stack
            .last()
            .cloned()
            .ok_or_else(|| ScanError::Corrupt("memo of an empty stack".into()))
    }
    fn get(&mut self, idx: u64) -> Result<(), ScanError> {
        let item = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| ScanError::Corrupt(format!("memo {idx} unset")))?;
        self.stack.push(item);
        Ok(())
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn check(module: &str, name: &str) -> Result<(), ScanError> {
    if allowed_global(module, name) {
        Ok(())
    } else {
        Err(ScanError::UnknownGlobal {
            module: module.to_string(),
            name: name.to_string(),
        })
    }
}

/// Scan one pickle starting at `start`; returns the offset just past its STOP opcode.
pub fn scan_pickle(data: &[u8], start: usize) -> Result<usize, ScanError> {
    let mut c = Cursor { data, pos: start };
    let mut m = Machine {
        stack: Vec::new(),
        memo: Default::default(),
    };
    loop {
        let op = c.u8()?;
        match op {
            b'.' => return Ok(c.pos),
            0x80 => {
                let proto = c.u8()?;
                if proto > 5 {
                    return Err(ScanError::Corrupt(format!("pickle protocol {proto}")));
                }
            }
            0x95 => {
                c.take(8)?;
            }
            // values that are not strings
            b'I' | b'L' | b'F' => {
                c.line()?;
                m.stack.push(Item::Other);
            }
            b'K' => {
                c.take(1)?;
                m.stack.push(Item::Other);
            }
            b'M' => {
                c.take(2)?;
                m.stack.push(Item::Other);
            }
            b'J' => {
                c.take(4)?;
                m.stack.push(Item::Other);
            }
            b'G' => {
                c.take(8)?;
                m.stack.push(Item::Other);
            }
            0x8a => {
                let n = c.len(1)?;
                c.take(n)?;
                m.stack.push(Item::Other);
            }
            0x8b => {
                let n = c.len(4)?;
                c.take(n)?;
                m.stack.push(Item::Other);
            }
            b'B' => {
                let n = c.len(4)?;
                c.take(n)?;
                m.stack.push(Item::Other);
            }
            b'C' => {
                let n = c.len(1)?;
                c.take(n)?;
                m.stack.push(Item::Other);
            }
            0x8e | 0x96 => {
                let n = c.len(8)?;
                c.take(n)?;
                m.stack.push(Item::Other);
            }
            b'N' | 0x88 | 0x89 | b')' | b']' | b'}' | 0x8f => m.stack.push(Item::Other),
            0x82 => {
                c.take(1)?;
                return Err(ScanError::UnknownGlobal {
                    module: "copyreg extension".into(),
                    name: "EXT1".into(),
                });
            }
            0x83 | 0x84 => {
                return Err(ScanError::UnknownGlobal {
                    module: "copyreg extension".into(),
                    name: "EXT".into(),
                });
            }
            0x97 | 0x98 => return Err(ScanError::Corrupt("out-of-band buffers are not supported".into())),
            // strings
            b'S' | b'V' => {
                let l = c.line()?;
                m.stack.push(Item::Str(
                    text(l).trim_matches(|ch| ch == '\'' || ch == '"').to_string(),
                ));
            }
            b'T' | b'X' => {
                let n = c.len(4)?;
                m.stack.push(Item::Str(text(c.take(n)?)));
            }
            b'U' | 0x8c => {
                let n = c.len(1)?;
                m.stack.push(Item::Str(text(c.take(n)?)));
            }
            0x8d => {
                let n = c.len(8)?;
                m.stack.push(Item::Str(text(c.take(n)?)));
            }
            // persistent ids
            b'P' => {
                c.line()?;
                m.stack.push(Item::Other);
            }
            b'Q' => {
                m.pop()?;
                m.stack.push(Item::Other);
            }
            // globals and calls
            b'c' => {
                let module = text(c.line()?);
                let name = text(c.line()?);
                check(&module, &name)?;
                m.stack.push(Item::Other);
            }
            b'i' => {
                let module = text(c.line()?);
                let name = text(c.line()?);
                check(&module, &name)?;
                m.pop_mark()?;
                m.stack.push(Item::Other);
            }
            0x93 => {
                let name = m.pop()?;
                let module = m.pop()?;
                match (module, name) {
                    (Item::Str(module), Item::Str(name)) => check(&module, &name)?,
                    _ => {
                        return Err(ScanError::UnknownGlobal {
                            module: "<computed>".into(),
                            name: "<computed>".into(),
                        })
                    }
                }
                m.stack.push(Item::Other);
            }
            b'R' => {
                m.pop_n(2)?;
                m.stack.push(Item::Other);
            }
            0x81 => {
                m.pop_n(2)?;
                m.stack.push(Item::Other);
            }
            0x92 => {
                m.pop_n(3)?;
                m.stack.push(Item::Other);
            }
            b'o' => {
                m.pop_mark()?;
                m.stack.push(Item::Other);
            }
            b'b' => {
                m.pop()?;
            }
            // containers
            b'(' => m.stack.push(Item::Mark),
            b't' | b'l' | b'd' | 0x91 => {
                m.pop_mark()?;
                m.stack.push(Item::Other);
            }
            0x85 => {
                m.pop_n(1)?;
                m.stack.push(Item::Other);
            }
            0x86 => {
                m.pop_n(2)?;
                m.stack.push(Item::Other);
            }
            0x87 => {
                m.pop_n(3)?;
                m.stack.push(Item::Other);
            }
            b'a' => m.pop_n(1)?,
            b's' => m.pop_n(2)?,
            b'e' | b'u' | 0x90 => m.pop_mark()?,
            b'0' => m.pop_n(1)?,
            b'1' => m.pop_mark()?,
            b'2' => {
                let t = m.top()?;
                m.stack.push(t);
            }
            // memo
            b'p' => {
                let idx = text(c.line()?)
                    .trim()
                    .parse::<u64>()
                    .map_err(|e| ScanError::Corrupt(e.to_string()))?;
                let t = m.top()?;
                m.memo.insert(idx, t);
            }
            b'q' => {
                let idx = c.le(1)?;
                let t = m.top()?;
                m.memo.insert(idx, t);
            }
            b'r' => {
                let idx = c.le(4)?;
                let t = m.top()?;
                m.memo.insert(idx, t);
            }
            0x94 => {
                let idx = m.memo.len() as u64;
                let t = m.top()?;
                m.memo.insert(idx, t);
            }
            b'g' => {
                let idx = text(c.line()?)
                    .trim()
                    .parse::<u64>()
                    .map_err(|e| ScanError::Corrupt(e.to_string()))?;
                m.get(idx)?;
            }
            b'h' => {
                let idx = c.le(1)?;
                m.get(idx)?;
            }
            b'j' => {
                let idx = c.le(4)?;
                m.get(idx)?;
            }
            other => return Err(ScanError::Corrupt(format!("unknown pickle opcode 0x{other:02x}"))),
        }
    }
}

/// Scan the `count` pickles that open a legacy (pre-1.6, non-zip) `torch.save` file: magic
/// number, protocol version, system info, the saved object, the storage keys.
pub fn scan_legacy(data: &[u8]) -> Result<usize, ScanError> {
    let mut pos = 0;
    for _ in 0..5 {
        pos = scan_pickle(data, pos)?;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_2_global_is_checked() {
        // ( c builtins\nprint\n ... ) as pickle.dumps(print, protocol=2) writes it
        let ok = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.";
        assert_eq!(scan_pickle(ok, 0), Ok(ok.len()));
        let bad = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.";
        assert_eq!(
            scan_pickle(bad, 0),
            Err(ScanError::UnknownGlobal {
                module: "posix".into(),
                name: "system".into()
            })
        );
    }

    #[test]
    fn stack_global_resolves_memoized_strings() {
        // pickle.dumps(print, protocol=4)
        let bad =
            b"\x80\x04\x95\x16\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x05print\x94\x93\x94.";
        assert_eq!(
            scan_pickle(bad, 0),
            Err(ScanError::UnknownGlobal {
                module: "builtins".into(),
                name: "print".into()
            })
        );
        // pickle.dumps(collections.OrderedDict(), protocol=4)
        let ok = b"\x80\x04\x95\"\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94.";
        assert_eq!(scan_pickle(ok, 0), Ok(ok.len()));
    }

    #[test]
    fn truncation_is_reported() {
        let cut = b"\x80\x02ccollections\nOrderedDict\nq\x00)R";
        assert_eq!(scan_pickle(cut, 0), Err(ScanError::Truncated));
    }
}
