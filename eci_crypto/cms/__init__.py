"""Export files: the XML signed (CMS SignedData) and then encrypted to the authority (CMS AuthEnvelopedData),
written and read as streams, so memory stays flat at any size.

Layout of a file (BER; "indef" marks the parts written with indefinite length, before their size is known):

    ContentInfo (indef): id-ct-authEnvelopedData (RFC 5083)
      AuthEnvelopedData (indef), version 0
        recipientInfos: one KeyTransRecipientInfo, issuerAndSerialNumber of the authority's certificate,
                        RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 4055)
        authEncryptedContentInfo (indef): id-data, AES-256-GCM (12-byte nonce, 16-byte ICV; RFC 5084)
          encryptedContent [0] (indef): OCTET STRING chunks, the ciphertext of
            ContentInfo (indef): id-signedData (RFC 5652)
              SignedData (indef), version 1, digestAlgorithms {SHA-256}
                encapContentInfo (indef): id-data, eContent: constructed OCTET STRING (indef) of XML chunks
                certificates: the platform's export-signing certificate
                signerInfos: one SignerInfo, signed attributes contentType, signingTime and messageDigest,
                             RSA PKCS#1 v1.5 with SHA-256
        mac: the 16-byte GCM tag

The encrypted content is labelled id-data rather than id-signedData: the plaintext is a whole CMS file (a
ContentInfo), exactly what `openssl cms -sign | openssl cms -encrypt` makes, so `openssl cms -decrypt` writes
out a file that `openssl cms -verify` reads (and RFC 5083 would require authAttrs for any other type).

An authority decrypts and verifies a file with stock OpenSSL 3.0 (BER input is fine with -inform DER; the
self-signed platform certificate is its own trust anchor for -CAfile):

    openssl cms -decrypt -binary -inform DER -in BE.xml.p7m -inkey authority.key -recip authority.crt \\
        -out BE.xml.signed.p7m
    openssl cms -verify -binary -inform DER -in BE.xml.signed.p7m -CAfile platform.crt -out BE.xml

-CAfile pins the platform's certificate: check it first against the published fingerprint
(`openssl x509 -noout -fingerprint -sha256 -in platform.crt`). After that certificate has expired, the
second command fails with "certificate has expired": add -no_check_time to it (the signing time is in the
file: `openssl cms -cmsout -print -inform DER -in BE.xml.signed.p7m | grep -A2 signingTime`).

Reading (reader.export_file_read) is a stream too. GCM authenticates only at the very end, and the
signature can be checked only after the content, so the XML given to the sink is UNVERIFIED until
export_file_read returns: whatever it wrote must be discarded when it raises (write to a temporary path;
rename only on success). Nothing decrypted is written anywhere but the caller's sink.

The modules: `ber` (BER framing, written and read by hand), `algorithms` (the identifiers and parameters
both directions share), `writer` (ExportFileWriter and its two layers) and `reader` (export_file_read and
its two layers). They import no Django and no app of the platform.
"""
