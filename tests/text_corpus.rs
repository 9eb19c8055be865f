//! Corpus files against their hand-written contents (`tests/fixtures/tiny.{fasta,fastq,txt}`), packing
//! arithmetic, and bad files → typed errors naming the file and record.

use std::path::{Path, PathBuf};

use sepo::text::{
    load_corpus, read_records, Bpe, Chunks, Format, Nucleotide, Packing, Record, Tokenizer,
};
use sepo::train::Corpus;
use sepo::Error;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A file under the system temp dir, unique to this process and `name`.
fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("sepo_text_{}_{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

fn record(number: usize, id: Option<&str>, text: &str) -> Record {
    Record {
        number,
        id: id.map(str::to_string),
        text: text.to_string(),
    }
}

#[test]
fn fasta_and_fastq_parse_to_the_fixture_contents() {
    let fasta: Vec<Record> = read_records(fixture("tiny.fasta"), Format::Fastx)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // The two-line sequence of seq1 is joined; the id is the whole header line.
    assert_eq!(
        fasta,
        [
            record(1, Some("seq1 first record"), "ACGTACGTACG"),
            record(2, Some("seq2"), "TTTT"),
        ]
    );
    let fastq: Vec<Record> = read_records(fixture("tiny.fastq"), Format::Fastx)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        fastq,
        [
            record(1, Some("read1"), "ACGT"),
            record(2, Some("read2 second read"), "GGCCA"),
        ]
    );
    // Text: the blank line 2 is skipped, record numbers are line numbers.
    let lines: Vec<Record> = read_records(fixture("tiny.txt"), Format::Lines)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        lines,
        [
            record(1, None, "the cat sat on the mat"),
            record(3, None, "at the inn"),
        ]
    );
}

/// `data` as a gzip file with one stored (uncompressed) deflate block (RFC 1951 §3.2.4, RFC 1952).
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let crc = !data.iter().fold(!0u32, |mut c, &b| {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
        c
    });
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x01];
    out.extend(len.to_le_bytes());
    out.extend((!len).to_le_bytes());
    out.extend(data);
    out.extend(crc.to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

#[test]
fn gzipped_fasta_reads_like_the_plain_file() {
    let plain = std::fs::read(fixture("tiny.fasta")).unwrap();
    let gz = temp_file("tiny.fa.gz", &gzip_stored(&plain));
    let read = |p: &Path| -> Vec<Record> {
        read_records(p, Format::Fastx)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(read(&gz), read(&fixture("tiny.fasta")));
    std::fs::remove_file(gz).unwrap();
}

#[test]
fn packing_arithmetic_on_the_fixtures() {
    let t = Nucleotide::new();
    // FASTA: 11 + 4 = 15 tokens, concatenated without separator into chunks of 4: ⌊15/4⌋ = 3 chunks,
    // 3 tokens (the last TTT) dropped.
    let none = Packing::Concatenate { separator: None };
    let mut chunks = Chunks::from_file(fixture("tiny.fasta"), Format::Fastx, &t, 4, none).unwrap();
    let out: Vec<Vec<usize>> = chunks.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(out, [vec![0, 1, 2, 3], vec![0, 1, 2, 3], vec![0, 1, 2, 3]]);
    assert_eq!(
        (
            chunks.records_read(),
            chunks.tokens_read(),
            chunks.pending()
        ),
        (2, 15, 3)
    );
    // FASTQ, padded with A (0) or truncated to 5: ACGT+A, GGCCA.
    let out = load_corpus(
        fixture("tiny.fastq"),
        Format::Fastx,
        &t,
        5,
        Packing::Pad { pad: 0 },
    )
    .unwrap();
    assert_eq!(out, [vec![0, 1, 2, 3, 0], vec![2, 2, 1, 1, 0]]);
    // Exactly 4 refuses the 5-base read2.
    match load_corpus(fixture("tiny.fastq"), Format::Fastx, &t, 4, Packing::Exact) {
        Err(Error::BadRecord {
            record: 2, path, ..
        }) => assert!(path.ends_with("tiny.fastq")),
        other => panic!("{other:?}"),
    }

    // Text with GPT-2 BPE, SEDD-style: 13 + eos + 5 + eos = 20 tokens → 2 chunks of 8, 4 dropped.
    let bpe = Bpe::from_file(fixture("tiny_gpt2_tokenizer.json")).unwrap();
    let eos = Packing::Concatenate {
        separator: bpe.eos_id(),
    };
    let out = load_corpus(fixture("tiny.txt"), Format::Lines, &bpe, 8, eos).unwrap();
    assert_eq!(
        out,
        [
            vec![83, 258, 220, 66, 265, 264, 265, 220],
            vec![261, 262, 220, 76, 265, 266, 265, 262],
        ]
    );
    // The chunks are a training corpus over the tokenizer's vocabulary.
    assert!(Corpus::new(&out, bpe.vocab_size()).is_ok());
    // Too long a chunk for 20 tokens: a typed error, not an empty corpus.
    assert!(matches!(
        load_corpus(fixture("tiny.txt"), Format::Lines, &bpe, 21, eos),
        Err(Error::EmptyCorpus { .. })
    ));
}

#[test]
fn bad_corpus_files_are_typed_errors_naming_file_and_record() {
    let t = Nucleotide::new();
    let open = |path: &Path, format| -> Result<Vec<Record>, Error> {
        read_records(path, format)?.collect()
    };

    // Empty files, and a text file of blank lines only.
    let empty = temp_file("empty.fa", b"");
    assert!(matches!(
        open(&empty, Format::Fastx),
        Err(Error::EmptyCorpus { .. })
    ));
    assert!(matches!(
        open(&empty, Format::Lines),
        Err(Error::EmptyCorpus { .. })
    ));
    let blank = temp_file("blank.txt", b"\n\r\n\n");
    assert!(matches!(
        open(&blank, Format::Lines),
        Err(Error::EmptyCorpus { .. })
    ));

    // Not FASTA/FASTQ at all (no leading `>` or `@`).
    let junk = temp_file("junk.fa", b"ACGT\n>seq\nACGT\n");
    match open(&junk, Format::Fastx) {
        Err(Error::BadRecord {
            record: 1, path, ..
        }) => assert_eq!(path, junk),
        other => panic!("{other:?}"),
    }
    // FASTQ whose second read has 4 bases and 3 qualities.
    let fq = temp_file("unequal.fq", b"@r1\nACGT\n+\nIIII\n@r2\nACGT\n+\nIII\n");
    match open(&fq, Format::Fastx) {
        Err(Error::BadRecord { record: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    // FASTQ truncated after its second header.
    let cut = temp_file("cut.fq", b"@r1\nACGT\n+\nIIII\n@r2\nAC");
    assert!(matches!(
        open(&cut, Format::Fastx),
        Err(Error::BadRecord { record: 2, .. })
    ));

    // Non-UTF-8 bytes: line 3 of a text file, the sequence of a FASTA record.
    let latin1 = temp_file("latin1.txt", b"ok\n\ncaf\xe9\nok\n");
    match open(&latin1, Format::Lines) {
        Err(Error::BadRecord {
            record: 3, reason, ..
        }) => assert!(reason.contains("UTF-8")),
        other => panic!("{other:?}"),
    }
    let binary = temp_file("binary.fa", b">s1\nACGT\n>s2\nAC\xff\xfeGT\n");
    assert!(matches!(
        open(&binary, Format::Fastx),
        Err(Error::BadRecord { record: 2, .. })
    ));

    // An unknown symbol in record 2 (the N of a strict nucleotide tokenizer), named with its id.
    let n = temp_file("n.fa", b">s1\nACGT\n>s2 has N\nACNT\n");
    match load_corpus(&n, Format::Fastx, &t, 4, Packing::Exact) {
        Err(Error::BadRecord {
            record: 2, reason, ..
        }) => {
            assert!(
                reason.contains("s2 has N") && reason.contains("'N'"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A missing file.
    assert!(matches!(
        read_records("/nonexistent/corpus.fa", Format::Fastx),
        Err(Error::Io { .. })
    ));

    for p in [empty, blank, junk, fq, cut, latin1, binary, n] {
        std::fs::remove_file(p).unwrap();
    }
}
