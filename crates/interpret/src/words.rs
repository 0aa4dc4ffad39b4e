//! Words as LIME's interpretable components of a sentence, as lime's `IndexedString` with
//! `bow=True` makes them: the text is split on runs of non-word characters (Python's `\W+`,
//! Unicode-aware: a word character is alphanumeric or `_`), the separators are kept, and each
//! *distinct* word is one component — switching it off removes every occurrence.

use std::collections::HashMap;

/// A sentence cut into words and separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    /// Pieces in order; `Some(c)` is an occurrence of distinct word c, `None` a separator.
    pieces: Vec<(String, Option<usize>)>,
    /// Distinct words in order of first occurrence.
    pub vocab: Vec<String>,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Words {
    pub fn split(text: &str) -> Self {
        let mut pieces: Vec<(String, Option<usize>)> = Vec::new();
        let mut vocab: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut current = String::new();
        let mut in_word = None;
        let mut flush = |current: &mut String, word: bool, pieces: &mut Vec<(String, Option<usize>)>| {
            if current.is_empty() {
                return;
            }
            let piece = std::mem::take(current);
            let id = word.then(|| {
                *index.entry(piece.clone()).or_insert_with(|| {
                    vocab.push(piece.clone());
                    vocab.len() - 1
                })
            });
            pieces.push((piece, id));
        };
        for ch in text.chars() {
            let w = is_word_char(ch);
            if in_word != Some(w) {
                flush(&mut current, in_word == Some(true), &mut pieces);
                in_word = Some(w);
            }
            current.push(ch);
        }
        flush(&mut current, in_word == Some(true), &mut pieces);
        Words { pieces, vocab }
    }

    /// Number of components (distinct words).
    pub fn len(&self) -> usize {
        self.vocab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vocab.is_empty()
    }

    /// The sentence with the words where `keep` is false removed (every occurrence); runs of
    /// whitespace left behind collapse to one space.
    pub fn render(&self, keep: &[bool]) -> String {
        let mut out = String::new();
        for (piece, id) in &self.pieces {
            match id {
                Some(c) if !keep[*c] => {}
                _ => out.push_str(piece),
            }
        }
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The sentence with every occurrence of word `c` replaced by `with`.
    pub fn replace(&self, c: usize, with: &str) -> String {
        self.pieces
            .iter()
            .map(|(piece, id)| if *id == Some(c) { with } else { piece.as_str() })
            .collect()
    }

    /// The component of `word` (exact match), if the sentence has it.
    pub fn position(&self, word: &str) -> Option<usize> {
        self.vocab.iter().position(|w| w == word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_lime_and_renders_masks() {
        let w = Words::split("it 's a good , good film -- très bien!");
        assert_eq!(w.vocab, ["it", "s", "a", "good", "film", "très", "bien"]);
        assert_eq!(w.render(&[true; 7]), "it 's a good , good film -- très bien!");
        let keep = [true, true, true, false, true, true, true];
        assert_eq!(w.render(&keep), "it 's a , film -- très bien!");
        assert_eq!(w.replace(3, "bad"), "it 's a bad , bad film -- très bien!");
        assert_eq!(w.position("film"), Some(4));
        assert!(Words::split("  ...  ").is_empty());
        assert_eq!(Words::split("").render(&[]), "");
    }
}
