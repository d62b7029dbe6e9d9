"""hrpred.export"""
