//! Tokenizers against hand-computed truth: exact GPT-2 BPE ids on the committed fixture
//! (`tests/fixtures/tiny_gpt2_tokenizer.json`: GPT-2's 256 byte tokens and first ten merges, with
//! GPT-2's ids), round trips, the mask convention, infilling prompts, and typed errors.

use proptest::prelude::*;
use sepo::graph::Absorbing;
use sepo::text::{Bpe, Chars, Infill, Nucleotide, OnUnknown, Tokenizer};
use sepo::Error;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/tiny_gpt2_tokenizer.json"
);

fn bpe() -> Bpe {
    Bpe::from_file(FIXTURE).unwrap()
}

#[test]
fn bpe_fixture_gives_gpt2_ids_by_hand() {
    let t = bpe();
    // 256 bytes + 10 merges + <|endoftext|>; the absorbing mask is the next id.
    assert_eq!(t.vocab_size(), 267);
    assert_eq!(t.eos_id(), Some(266));
    assert_eq!(t.mask_id(), 267);
    assert_eq!(
        Absorbing::with_tokens(t.vocab_size()).unwrap().mask_token(),
        t.mask_id()
    );
    // Pre-tokens `the`, `Ġcat`, `Ġsat`, `Ġon`, `Ġthe`, `Ġmat`; printable ASCII byte b has id b − 33 and
    // space (Ġ) 220. Merges by rank: `h e`→258 gives t|he; `a t`→265 gives Ġ c at; `Ġ s`→264 (rank 8)
    // before `a t` (rank 9) gives Ġs|at; `o n`→261; `Ġ t`→256, `h e`, `Ġt he`→262 gives Ġthe.
    assert_eq!(
        t.encode("the cat sat on the mat").unwrap(),
        [83, 258, 220, 66, 265, 264, 265, 220, 261, 262, 220, 76, 265]
    );
    // é is the bytes C3 A9, GPT-2 byte tokens Ã (127) and © (102); the special token is one id.
    assert_eq!(t.encode("é").unwrap(), [127, 102]);
    assert_eq!(t.encode("a<|endoftext|>b").unwrap(), [64, 266, 65]);
    assert_eq!(t.encode("\n").unwrap(), [198]);
    assert_eq!(t.encode("").unwrap(), Vec::<usize>::new());
    assert_eq!(t.token(262).as_deref(), Some("Ġthe"));
    // Decoding, with the mask rendered as text.
    assert_eq!(t.decode(&[262, 267, 265]).unwrap(), " the[MASK]at");
    assert_eq!(
        t.with_mask_text("_").decode(&[83, 258, 267]).unwrap(),
        "the_"
    );
    assert!(matches!(
        bpe().decode(&[268]),
        Err(Error::TokenOutOfVocab { token: 268, .. })
    ));
}

#[test]
fn bpe_round_trips_any_text() {
    let t = bpe();
    for s in [
        "the cat sat on the mat",
        "  leading and trailing  ",
        "tabs\tand\nnewlines\r\n",
        "naïve café — 東京 🦀",
        "<|endoftext|>the end<|endoftext|>",
    ] {
        assert_eq!(t.decode(&t.encode(s).unwrap()).unwrap(), s);
    }
}

/// A word-level BPE (whitespace pre-tokenizer, no byte alphabet) over `a`, `b`, `ab`.
fn word_bpe(unk: Option<&str>) -> String {
    let unk_json = unk.map_or("null".to_string(), |u| format!("\"{u}\""));
    let unk_vocab = unk.map_or(String::new(), |u| format!(", \"{u}\": 3"));
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null,
        "decoder": null, "model": {{"type": "BPE", "dropout": null, "unk_token": {unk_json},
        "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
        "byte_fallback": false, "vocab": {{"a": 0, "b": 1, "ab": 2{unk_vocab}}}, "merges": ["a b"]}}}}"#
    )
}

#[test]
fn bpe_unknown_characters_are_typed_errors() {
    // Without an unk token the model drops `c`; with one it emits it. Both are reported.
    for unk in [None, Some("<unk>")] {
        let t = Bpe::from_json(word_bpe(unk).as_bytes(), "word.json").unwrap();
        assert_eq!(t.encode("ab a").unwrap(), [2, 0]);
        match t.encode("ab acb") {
            Err(Error::UnknownSymbol {
                tokenizer: "bpe",
                symbol: 'c',
                position: 4,
            }) => {}
            other => panic!("unk {unk:?}: {other:?}"),
        }
    }
}

#[test]
fn bad_tokenizer_files_are_typed_errors() {
    let bad = |json: &str| Bpe::from_json(json.as_bytes(), "x.json").unwrap_err();
    assert!(matches!(bad("{ not json"), Error::BadTokenizer { .. }));
    // A hole in the ids: 3 tokens but no id 2.
    let holed = word_bpe(None).replace("\"ab\": 2", "\"ab\": 5");
    match bad(&holed) {
        Error::BadTokenizer { reason, .. } => assert!(reason.contains("contiguous"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let word_level = r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"a": 0, "<unk>": 1}, "unk_token": "<unk>"}}"#;
    assert!(matches!(bad(word_level), Error::BadTokenizer { .. }));
    assert!(matches!(
        Bpe::from_file("/nonexistent/tokenizer.json"),
        Err(Error::Io { .. })
    ));
    assert!(bpe().with_eos("<|nope|>").is_err());
    assert_eq!(bpe().with_eos("Ġthe").unwrap().eos_id(), Some(262));
}

#[test]
fn infilling_places_prefix_and_suffix_like_sedd() {
    let t = bpe();
    // "the" → [83, 258]; " mat" → [220, 76, 265].
    let infill = Infill::new(&t, "the", " mat", 8).unwrap();
    assert_eq!(infill.free(), 2..5);
    assert_eq!(infill.template(), [83, 258, 267, 267, 267, 220, 76, 265]);
    let c = infill.condition().unwrap();
    assert_eq!(c.pattern()[..3], [Some(83), Some(258), None]);
    assert_eq!(c.pattern()[5..], [Some(220), Some(76), Some(265)]);
    // A sampled sequence (" cat sat" in the middle) decodes to the whole sentence.
    let sampled = [83, 258, 220, 66, 265, 264, 265, 220, 76, 265];
    let infill = Infill::new(&t, "the", " mat", 10).unwrap();
    assert_eq!(t.decode(&sampled).unwrap(), "the cat sat mat");
    assert_eq!(
        t.decode(infill.middle(&sampled).unwrap()).unwrap(),
        " cat sat"
    );
    assert!(Infill::new(&t, "the cat", " mat", 4).is_err());
}

proptest! {
    #[test]
    fn encode_never_panics_and_bpe_round_trips(s in any::<String>()) {
        let t = bpe();
        let ids = t.encode(&s).unwrap();
        prop_assert!(ids.iter().all(|&i| i < t.vocab_size()));
        prop_assert_eq!(t.decode(&ids).unwrap(), s.clone());
        // The strict tokenizers return Ok or a typed error, never panic.
        let _ = Nucleotide::new().encode(&s);
        let _ = Nucleotide::new().fold_case(true).ambiguous(OnUnknown::Mask).encode(&s);
        let _ = Chars::new("abc ").unwrap().encode(&s);
    }

    #[test]
    fn nucleotide_and_character_round_trip_valid_text(s in "[ACGT]{0,40}", c in "[a-e ]{0,40}") {
        let n = Nucleotide::new();
        prop_assert_eq!(n.decode(&n.encode(&s).unwrap()).unwrap(), s.clone());
        let ch = Chars::new("abcde ").unwrap();
        prop_assert_eq!(ch.decode(&ch.encode(&c).unwrap()).unwrap(), c.clone());
    }
}
