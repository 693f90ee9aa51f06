"""Ingest, the first stage: DICOM instances arrive, are checked and held until their study is due.

Enters: the parts of a STOW-RS request (:mod:`.stow`, handed over by the HTTP layer) and the
C-STOREs of the DICOM node (:mod:`.dicom_node`). Each instance is parsed once and checked
without decoding its pixels (:mod:`.instances`), and refused with a DICOM storage status when it
cannot be used.

Leaves: the acknowledgement (the PS3.18 store response of :mod:`.store_response`, a C-STORE
status) once the instance is held, in memory and, when configured, in the intake spool on disk
(:mod:`.collector`, :mod:`.spool`); then each study, once due, handed to analysis
(:mod:`.scheduler`). A restart resumes every acknowledged study from the spool.

Imports analysis and delivery (it asks delivery whether the SR queue has room before accepting
a study), never the HTTP layer.
"""
