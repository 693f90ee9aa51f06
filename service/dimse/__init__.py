"""DIMSE networking of the service (pynetdicom): the DICOM node (C-ECHO / C-STORE SCP) and the
C-STORE client that delivers SRs to a PACS."""
